"""Auth through the gateway, black-box: registration rules, login and its
lockout, refresh rotation and reuse detection, logout, sessions, and the
revocation that reaches access tokens."""
from __future__ import annotations

import time, unittest, uuid

import context
from helpers import PASSWORD, client, login, new_user, register
from tokens import parts


class RegisterTest(unittest.TestCase):
    def setUp(self):
        self.c = client()

    def test_register_normalises_email_and_answers_201(self):
        local = f"Mixed.Case-{uuid.uuid4().hex[:8]}"
        r = self.c.post("/v1/auth/register", {"email": f"  {local}@Example.COM ", "password": PASSWORD,
                                               "display_name": "Ada"})
        self.assertEqual(r.status, 201, r.body)
        self.assertEqual(r.json["email"], f"{local.lower()}@example.com")
        uuid.UUID(r.json["user_id"])  # an opaque UUID string

    def test_weak_passwords_are_422_with_the_pointer(self):
        email = f"weak-{uuid.uuid4().hex[:8]}@example.com"
        for pw in ("short", email.upper()):
            r = self.c.post("/v1/auth/register", {"email": email, "password": pw, "display_name": "W"})
            self.assertEqual(r.status, 422, r.body)
            self.assertEqual(r.header("content-type"), "application/problem+json")
            self.assertEqual([e["pointer"] for e in r.json["errors"]], ["/password"])
        # nothing was created: the e-mail is still free
        register(self.c, email)

    def test_taken_email_is_409(self):
        acct = register(self.c)
        r = self.c.post("/v1/auth/register", {"email": acct["email"].upper(), "password": PASSWORD,
                                               "display_name": "Again"})
        self.assertEqual(r.status, 409, r.body)

    def test_unknown_fields_and_missing_fields_are_listed(self):
        r = self.c.post("/v1/auth/register", {"email": "x@example.com", "admin": True})
        self.assertEqual(r.status, 422)
        pointers = sorted(e["pointer"] for e in r.json["errors"])
        self.assertEqual(pointers, ["/admin", "/display_name", "/password"])
        self.assertTrue(r.json["request_id"])

    def test_malformed_json_is_400_and_wrong_media_type_415(self):
        r = self.c.post("/v1/auth/register", raw=b'{"email": ', headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 400)
        self.assertIn("malformed JSON", r.json["detail"])
        r = self.c.post("/v1/auth/register", raw=b"email=x", headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(r.status, 415)

    def test_body_over_the_route_limit_is_413(self):
        r = self.c.post("/v1/auth/register", {"email": "big@example.com", "password": "x" * 20000,
                                               "display_name": "Big"})
        self.assertEqual(r.status, 413, r.body)
        self.assertEqual(r.json["status"], 413)


class LoginTest(unittest.TestCase):
    def setUp(self):
        self.c = client()

    def test_login_returns_a_bearer_pair_with_the_documented_claims(self):
        acct = register(self.c)
        t = login(self.c, acct["email"])
        self.assertEqual(t["token_type"], "Bearer")
        self.assertEqual(t["expires_in"], 900)
        self.assertGreater(len(t["refresh_token"]), 30)
        header, claims = parts(t["access_token"])
        self.assertEqual(header["alg"], "RS256")
        self.assertEqual(claims["sub"], acct["user_id"])
        self.assertEqual(claims["roles"], ["user"])
        for k in ("iss", "aud", "exp", "iat", "jti", "sid"):
            self.assertIn(k, claims)
        jwks = self.c.get("/.well-known/jwks.json")
        self.assertEqual(jwks.status, 200)
        self.assertIn(header["kid"], [k["kid"] for k in jwks.json["keys"]])

    def test_wrong_password_and_unknown_email_look_the_same(self):
        acct = register(self.c)

        def attempt(email):
            t0 = time.monotonic()
            r = self.c.post("/v1/auth/login", {"email": email, "password": "not the password at all"})
            return r, time.monotonic() - t0

        known, unknown = [], []
        for _ in range(3):
            r1, d1 = attempt(acct["email"])
            r2, d2 = attempt(f"nobody-{uuid.uuid4().hex[:8]}@example.com")
            self.assertEqual((r1.status, r1.json["detail"]), (r2.status, r2.json["detail"]))
            known.append(d1)
            unknown.append(d2)
        # both run one scrypt: an unknown e-mail must not answer markedly faster
        self.assertGreater(sorted(unknown)[1], 0.5 * sorted(known)[1])

    def test_lockout_after_five_failures_even_with_the_right_password(self):
        acct = register(self.c)
        for _ in range(5):
            r = self.c.post("/v1/auth/login", {"email": acct["email"], "password": "wrong password!"})
            self.assertEqual(r.status, 401)
        r = self.c.post("/v1/auth/login", {"email": acct["email"], "password": PASSWORD})
        self.assertEqual(r.status, 429, r.body)
        retry = int(r.header("retry-after"))
        self.assertTrue(0 < retry <= 900, retry)
        # another account is not affected
        other = register(self.c)
        login(self.c, other["email"])


class SessionTest(unittest.TestCase):
    def setUp(self):
        self.c = client()

    def wait_refused(self, token: str, within: float = 1.0) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < within + 1:
            r = self.c.get("/v1/auth/sessions", token=token)
            if r.status == 401:
                return time.monotonic() - t0
            time.sleep(0.05)
        self.fail("the access token still works")

    def test_refresh_rotates_and_reuse_revokes_the_whole_chain(self):
        acct, t1 = new_user(self.c)
        r = self.c.post("/v1/auth/refresh", {"refresh_token": t1["refresh_token"]})
        self.assertEqual(r.status, 200, r.body)
        t2 = r.json
        self.assertNotEqual(t2["refresh_token"], t1["refresh_token"])
        self.assertEqual(parts(t2["access_token"])[1]["sid"], parts(t1["access_token"])[1]["sid"])
        self.assertEqual(self.c.get("/v1/auth/sessions", token=t2["access_token"]).status, 200)
        # the spent token comes back: 401, and the newest token of the chain dies too
        r = self.c.post("/v1/auth/refresh", {"refresh_token": t1["refresh_token"]})
        self.assertEqual(r.status, 401)
        r = self.c.post("/v1/auth/refresh", {"refresh_token": t2["refresh_token"]})
        self.assertEqual(r.status, 401)
        # and so do the session's access tokens, within a second
        self.assertLess(self.wait_refused(t2["access_token"]), 1.0)

    def test_logout_revokes_refresh_and_access_tokens(self):
        acct, t = new_user(self.c)
        r = self.c.post("/v1/auth/logout", {"refresh_token": t["refresh_token"]})
        self.assertEqual(r.status, 204)
        self.assertEqual(r.body, b"")
        self.assertEqual(self.c.post("/v1/auth/refresh", {"refresh_token": t["refresh_token"]}).status, 401)
        self.assertLess(self.wait_refused(t["access_token"]), 1.0)

    def test_sessions_list_and_revoke_one(self):
        acct, t1 = new_user(self.c)
        t2 = login(self.c, acct["email"])
        r = self.c.get("/v1/auth/sessions", token=t1["access_token"])
        self.assertEqual(r.status, 200)
        ids = [s["id"] for s in r.json["items"]]
        self.assertEqual(len(ids), 2)
        self.assertIsNone(r.json["next_cursor"])
        for s in r.json["items"]:
            self.assertRegex(s["created_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        sid2 = parts(t2["access_token"])[1]["sid"]
        # someone else cannot revoke it, and cannot learn it exists
        other, ot = new_user(self.c)
        r = self.c.delete(f"/v1/auth/sessions/{sid2}", token=ot["access_token"])
        self.assertEqual(r.status, 404)
        self.assertEqual(self.c.delete("/v1/auth/sessions/not-a-uuid", token=t1["access_token"]).status, 400)
        r = self.c.delete(f"/v1/auth/sessions/{sid2}", token=t1["access_token"])
        self.assertEqual(r.status, 204)
        self.assertLess(self.wait_refused(t2["access_token"]), 1.0)
        r = self.c.get("/v1/auth/sessions", token=t1["access_token"])
        self.assertEqual([s["id"] for s in r.json["items"]], [parts(t1["access_token"])[1]["sid"]])

    def test_identity_headers_from_the_client_are_ignored(self):
        acct, t = new_user(self.c)
        other, ot = new_user(self.c)
        r = self.c.get("/v1/auth/sessions", token=t["access_token"],
                       headers={"Auth-Sub": other["user_id"], "Auth-Roles": "admin"})
        self.assertEqual(r.status, 200)
        mine = parts(t["access_token"])[1]["sid"]
        self.assertEqual([s["id"] for s in r.json["items"]], [mine])
        self.assertEqual(self.c.get("/v1/auth/sessions", headers={"Auth-Sub": other["user_id"]}).status, 401)


if __name__ == "__main__":
    unittest.main()
