//! `custody keygen`.

use std::io::Write as _;
use std::path::PathBuf;

use clap::Args;
use custody_jose::{Algorithm, KeySet, SigningKey};

#[derive(Args)]
pub(crate) struct KeygenArgs {
    /// The key id.
    #[arg(long)]
    kid: String,
    /// Where to write the private JWK (created with mode 0600; never overwritten).
    #[arg(long)]
    private: PathBuf,
    /// Where to write the public JWKS (replaced).
    #[arg(long)]
    public: PathBuf,
    /// The algorithm: `EdDSA` (Ed25519, the default), `ES256` (P-256), `ES384` (P-384), or an
    /// RSA one (`RS256`, `PS256`, …: a 2048-bit key). The public JWK of an EC or RSA key
    /// pins this `alg`.
    #[arg(long, default_value = "EdDSA", value_parser = parse_alg)]
    alg: Algorithm,
}

/// An algorithm of custody's list, by its JOSE name.
pub(crate) fn parse_alg(name: &str) -> Result<Algorithm, String> {
    Algorithm::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = Algorithm::ALL.iter().map(|a| a.name()).collect();
        format!("`{name}` is not one of {}", names.join(", "))
    })
}

pub(crate) fn keygen(args: &KeygenArgs) -> Result<u8, String> {
    let key = if args.alg.is_ed25519() {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).map_err(|e| format!("no randomness: {e}"))?;
        let key = SigningKey::from_seed(&args.kid, seed);
        key.with_alg(args.alg).unwrap_or(key)
    } else {
        SigningKey::generate(&args.kid, args.alg).map_err(|e| e.to_string())?
    };
    let private = serde_json::to_string_pretty(&key.to_private_jwk()).map_err(|e| e.to_string())?;
    write_private(&args.private, private.as_bytes())
        .map_err(|e| format!("{}: {e}", args.private.display()))?;
    let mut set = KeySet::new();
    set.insert(key.public()).map_err(|e| e.to_string())?;
    let public = serde_json::to_string_pretty(&set.to_jwks()).map_err(|e| e.to_string())?;
    std::fs::write(&args.public, format!("{public}\n"))
        .map_err(|e| format!("{}: {e}", args.public.display()))?;
    eprintln!(
        "wrote private key {} and public key set {}",
        args.private.display(),
        args.public.display()
    );
    Ok(0)
}

fn write_private(path: &PathBuf, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.write_all(b"\n")
}
