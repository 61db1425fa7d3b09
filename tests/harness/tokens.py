"""Forging JWTs for attack tests with the openssl command line, so the tests
never reuse the code under test to sign."""
from __future__ import annotations

import base64, hashlib, hmac, json, subprocess, tempfile, time, os


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def parts(token: str) -> tuple[dict, dict]:
    h, p, _ = token.split(".")
    return json.loads(unb64url(h)), json.loads(unb64url(p))


def sign_rs256(header: dict, claims: dict, key_pem_path: str) -> str:
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key_pem_path], input=signing_input.encode(),
                         capture_output=True, check=True).stdout
    return signing_input + "." + b64url(sig)


def sign_hs256(header: dict, claims: dict, secret: bytes) -> str:
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    return signing_input + "." + b64url(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())


def new_rsa_key() -> str:
    """A fresh RSA-2048 private key file (the caller removes it)."""
    fd, path = tempfile.mkstemp(suffix=".pem")
    os.close(fd)
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", path],
                   capture_output=True, check=True)
    return path


def newest_key(keys_dir: str) -> tuple[str, str]:
    """(kid, path) of the newest signing key in Auth's keys directory."""
    names = sorted(n for n in os.listdir(keys_dir) if n.endswith(".pem"))
    return names[-1][:-4], os.path.join(keys_dir, names[-1])


def claims_for(sub: str, **over) -> dict:
    now = int(time.time())
    c = {"iss": "moonport", "sub": sub, "aud": "moonport-api", "iat": now, "exp": now + 600, "jti": "t" + str(now),
         "roles": ["user"], "sid": "00000000-0000-0000-0000-000000000000"}
    c.update(over)
    return c
