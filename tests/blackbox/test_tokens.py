"""Bearer tokens the gateway must refuse (tampered, alg none, HS/RS
confusion, expired, unknown key, wrong issuer or audience) and key
rotation, black-box. Forged tokens are signed with the openssl CLI."""
from __future__ import annotations

import json, os, time, unittest

import context
from helpers import client, new_user
from tokens import b64url, claims_for, new_rsa_key, newest_key, parts, sign_hs256, sign_rs256


class TokenAttackTest(unittest.TestCase):
    def setUp(self):
        self.c = client()
        self.acct, self.t = new_user(self.c)
        self.kid, self.key = newest_key(context.MOONPORT.keys_dir)
        self.claims = claims_for(self.acct["user_id"], sid=parts(self.t["access_token"])[1]["sid"])

    def refused(self, token: str, why: str | None = None):
        r = self.c.get("/v1/auth/sessions", token=token)
        self.assertEqual(r.status, 401, r.body)
        self.assertEqual(r.header("www-authenticate"), 'Bearer realm="moonport"')
        if why:
            self.assertIn(why, r.json["detail"])
        return r

    def test_a_token_signed_with_the_real_key_is_accepted(self):
        # the control: the forging helper itself produces tokens the gateway accepts
        token = sign_rs256({"alg": "RS256", "typ": "JWT", "kid": self.kid}, self.claims, self.key)
        self.assertEqual(self.c.get("/v1/auth/sessions", token=token).status, 200)

    def test_tampered_payload_is_refused(self):
        h, p, s = self.t["access_token"].split(".")
        claims = parts(self.t["access_token"])[1]
        claims["roles"] = ["user", "admin"]
        self.refused(f"{h}.{b64url(json.dumps(claims).encode())}.{s}")

    def test_alg_none_is_refused(self):
        header = {"alg": "none", "typ": "JWT", "kid": self.kid}
        token = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(self.claims).encode()) + "."
        self.refused(token)

    def test_hs256_signed_with_the_public_key_is_refused(self):
        jwks = self.c.get("/.well-known/jwks.json").json
        public = json.dumps(jwks["keys"][0]).encode()
        self.refused(sign_hs256({"alg": "HS256", "typ": "JWT", "kid": self.kid}, self.claims, public))

    def test_expired_token_is_refused(self):
        now = int(time.time())
        claims = dict(self.claims, iat=now - 1000, exp=now - 120)  # past the 60 s leeway
        self.refused(sign_rs256({"alg": "RS256", "kid": self.kid}, claims, self.key), "expired")
        claims = dict(self.claims, iat=now - 1000, exp=now - 20)   # within the leeway: still fine
        self.assertEqual(self.c.get("/v1/auth/sessions", token=sign_rs256({"alg": "RS256", "kid": self.kid},
                                                                         claims, self.key)).status, 200)

    def test_wrong_issuer_or_audience_is_refused(self):
        for over in ({"iss": "someone-else"}, {"aud": "another-api"}):
            self.refused(sign_rs256({"alg": "RS256", "kid": self.kid}, dict(self.claims, **over), self.key))

    def test_token_from_an_unknown_key_is_refused(self):
        stranger = new_rsa_key()
        try:
            self.refused(sign_rs256({"alg": "RS256", "kid": "k-stranger"}, self.claims, stranger), "unknown key")
            # a known kid with the wrong key fails on the signature
            self.refused(sign_rs256({"alg": "RS256", "kid": self.kid}, self.claims, stranger))
        finally:
            os.unlink(stranger)

    def test_garbage_authorization_headers(self):
        for value in ("Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer a.b", "Bearer ....", "Bearer " + "A" * 9000):
            r = self.c.get("/v1/auth/sessions", headers={"Authorization": value})
            self.assertEqual(r.status, 401, value[:20])


class KeyRotationTest(unittest.TestCase):
    def test_rotation_signs_with_the_new_key_and_old_tokens_stay_valid(self):
        c = client()
        acct, old = new_user(c)
        old_kid = parts(old["access_token"])[0]["kid"]
        r = context.MOONPORT.run("auth", "rotate-key")
        self.assertEqual(r.returncode, 0, r.stderr)
        new_kid = r.stdout.strip()
        self.assertNotEqual(new_kid, old_kid)
        deadline = time.time() + 5
        while True:  # Auth notices the new file within about two seconds
            fresh = c.post("/v1/auth/login", {"email": acct["email"], "password": acct["password"]}).json
            if parts(fresh["access_token"])[0]["kid"] == new_kid or time.time() > deadline:
                break
            time.sleep(0.3)
        self.assertEqual(parts(fresh["access_token"])[0]["kid"], new_kid)
        # the gateway had never seen this kid: it fetches the JWKS and accepts the token
        self.assertEqual(c.get("/v1/auth/sessions", token=fresh["access_token"]).status, 200)
        self.assertEqual(c.get("/v1/auth/sessions", token=old["access_token"]).status, 200)
        kids = [k["kid"] for k in c.get("/.well-known/jwks.json").json["keys"]]
        self.assertIn(old_kid, kids)
        self.assertIn(new_kid, kids)


if __name__ == "__main__":
    unittest.main()
