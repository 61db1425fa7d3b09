"""User profiles through the gateway, black-box: a profile exists as soon as
registration answers; only its owner and admins see it (404, not 403, for
anyone else); PATCH rules with pointers; avatars checked by their bytes and
served with ETag and caching; the admin listing pages without repeats."""
from __future__ import annotations

import base64, hashlib, json, unittest, uuid

from helpers import client, new_admin, new_user, register

# real 1x1 images (the PNG by hand, the JPEG from cjpeg, the WebP from cwebp)
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC")
WEBP = base64.b64decode("UklGRhwAAABXRUJQVlA4TA8AAAAvAAAAAAcQ/Y/+ByKi/wEA")
JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDABALDA4MChAODQ4SERATGCgaGBYWGDEjJR0oOjM9PDkzODdASFxOQERXRTc4UG1RV19iZ2hnPk1xeXBk"
    "eFxlZ2P/2wBDARESEhgVGC8aGi9jQjhCY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2P/wAARCAACAAID"
    "ASIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKB"
    "kaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZ"
    "mqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEAAwEBAQEBAQEBAQAAAAAAAAECAwQF"
    "BgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdhcRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5"
    "OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX"
    "2Nna4uPk5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEAPwDrNFtbd9EsGeCJma2jJJQEk7RRRRXnT+Jnk1Pjfqf/2Q==")


def bearer(tokens: dict) -> str:
    return tokens["access_token"]


class ProfileAccessTest(unittest.TestCase):
    def setUp(self):
        self.c = client()

    def test_profile_exists_right_after_registration(self):
        acct = register(self.c, name="Grace Hopper")
        tok = self.c.post("/v1/auth/login", {"email": acct["email"], "password": acct["password"]}).json
        r = self.c.get("/v1/users/me", token=bearer(tok))
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json["id"], acct["user_id"])
        self.assertEqual(r.json["email"], acct["email"])
        self.assertEqual(r.json["display_name"], "Grace Hopper")
        self.assertEqual(r.json["preferences"], {})
        self.assertEqual(r.header("etag"), '"1"')
        self.assertRegex(r.json["created_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertEqual(self.c.get(f"/v1/users/{acct['user_id']}", token=bearer(tok)).json, r.json)

    def test_others_get_404_not_403(self):
        a, ta = new_user(self.c)
        b, tb = new_user(self.c)
        missing = str(uuid.uuid4())
        for path in (f"/v1/users/{a['user_id']}", f"/v1/users/{a['user_id']}/avatar"):
            r = self.c.get(path, token=bearer(tb))
            self.assertEqual(r.status, 404, (path, r.body))
        r = self.c.patch(f"/v1/users/{a['user_id']}", {"display_name": "Mallory"}, token=bearer(tb))
        self.assertEqual(r.status, 404, r.body)
        r = self.c.put(f"/v1/users/{a['user_id']}/avatar", raw=PNG, headers={"Content-Type": "image/png"},
                       token=bearer(tb))
        self.assertEqual(r.status, 404, r.body)
        # the same answer as for nobody at all, so it confirms nothing
        other, nobody = self.c.get(f"/v1/users/{a['user_id']}", token=bearer(tb)), \
            self.c.get(f"/v1/users/{missing}", token=bearer(tb))
        self.assertEqual((other.status, other.json["detail"]), (nobody.status, nobody.json["detail"]))
        # a's profile is untouched
        self.assertEqual(self.c.get("/v1/users/me", token=bearer(ta)).json["display_name"], "Test User")

    def test_admin_sees_every_profile_and_anonymous_none(self):
        a, _ = new_user(self.c)
        _, admin = new_admin(self.c)
        r = self.c.get(f"/v1/users/{a['user_id']}", token=bearer(admin))
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json["email"], a["email"])
        r = self.c.patch(f"/v1/users/{a['user_id']}", {"display_name": "Renamed by admin"}, token=bearer(admin))
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(self.c.get(f"/v1/users/{a['user_id']}").status, 401)
        self.assertEqual(self.c.get("/v1/users/me").status, 401)

    def test_malformed_id_is_400(self):
        _, t = new_user(self.c)
        r = self.c.get("/v1/users/not-a-uuid", token=bearer(t))
        self.assertEqual(r.status, 400, r.body)
        self.assertEqual(r.json["errors"][0]["pointer"], "/userId")


class ProfilePatchTest(unittest.TestCase):
    def setUp(self):
        self.c = client()
        self.acct, tok = new_user(self.c)
        self.t = bearer(tok)

    def patch(self, body, **kw):
        return self.c.patch("/v1/users/me", body, token=self.t, **kw)

    def pointers(self, r) -> list:
        self.assertEqual(r.status, 422, r.body)
        return sorted(e["pointer"] for e in r.json["errors"])

    def test_patch_changes_the_fields_and_the_version(self):
        r = self.patch({"display_name": "Ada L.", "avatar_url": "https://img.example/ada.png", "locale": "en-GB",
                        "timezone": "Europe/London", "preferences": {"theme": "dark", "a": {"b": {"c": {"d": 1}}}}})
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.header("etag"), '"2"')
        got = self.c.get("/v1/users/me", token=self.t).json
        for k, v in {"display_name": "Ada L.", "avatar_url": "https://img.example/ada.png", "locale": "en-GB",
                     "timezone": "Europe/London", "version": 2}.items():
            self.assertEqual(got[k], v)
        self.assertEqual(got["preferences"]["a"]["b"]["c"]["d"], 1)
        # null clears what may be cleared
        r = self.patch({"avatar_url": None, "locale": None, "preferences": None})
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual((r.json["avatar_url"], r.json["locale"], r.json["preferences"]), (None, None, {}))
        self.assertEqual(r.json["timezone"], "Europe/London")

    def test_unknown_and_invalid_fields_are_422_at_their_pointers(self):
        self.assertEqual(self.pointers(self.patch({"email": "x@example.com"})), ["/email"])
        r = self.patch({"display_name": "", "avatar_url": "http://plain.example/a.png", "locale": "en_US",
                        "timezone": "Mars/Olympus_Mons", "preferences": [1], "roles": ["admin"]})
        # the gateway's contract check names every field that breaks the schema; the zone
        # database is the service's to consult, so an unknown zone is found once the rest is valid
        self.assertEqual(self.pointers(r), ["/avatar_url", "/display_name", "/locale", "/preferences", "/roles"])
        self.assertEqual(self.pointers(self.patch({"timezone": "Mars/Olympus_Mons"})), ["/timezone"])
        self.assertEqual(self.pointers(self.patch({"display_name": "x" * 81})), ["/display_name"])
        self.assertEqual(self.pointers(self.patch({"display_name": "   "})), ["/display_name"])
        self.assertEqual(self.pointers(self.patch({"timezone": "../../../etc/passwd"})), ["/timezone"])
        self.assertEqual(self.pointers(self.patch({"avatar_url": "https://user@evil.example/x"})), ["/avatar_url"])
        # nothing of it was stored
        self.assertEqual(self.c.get("/v1/users/me", token=self.t).json["version"], 1)

    def test_preferences_limits(self):
        five = {"a": {"b": {"c": {"d": {"e": 1}}}}}
        self.assertEqual(self.pointers(self.patch({"preferences": five})), ["/preferences"])
        big = {"blob": "x" * (16 * 1024)}
        self.assertEqual(self.pointers(self.patch({"preferences": big})), ["/preferences"])
        just = {"blob": "x" * (16 * 1024 - 20)}
        self.assertEqual(self.patch({"preferences": just}).status, 200)

    def test_if_match_and_if_none_match(self):
        r = self.patch({"display_name": "One"}, headers={"If-Match": '"1"'})
        self.assertEqual(r.status, 200, r.body)
        r = self.patch({"display_name": "Stale"}, headers={"If-Match": '"1"'})
        self.assertEqual(r.status, 412, r.body)
        r = self.c.get("/v1/users/me", token=self.t, headers={"If-None-Match": '"2"'})
        self.assertEqual(r.status, 304)
        self.assertEqual(r.header("etag"), '"2"')
        self.assertEqual(r.body, b"")
        self.assertEqual(self.c.get("/v1/users/me", token=self.t, headers={"If-None-Match": '"1"'}).status, 200)


class AvatarTest(unittest.TestCase):
    def setUp(self):
        self.c = client()
        self.acct, tok = new_user(self.c)
        self.t = bearer(tok)
        self.path = f"/v1/users/{self.acct['user_id']}/avatar"

    def put(self, data: bytes, ctype: str = "image/png"):
        return self.c.put(self.path, raw=data, headers={"Content-Type": ctype}, token=self.t)

    def test_text_and_fake_headers_are_415(self):
        r = self.put(b"just some notes, saved as avatar.txt\n", "image/png")
        self.assertEqual(r.status, 415, r.body)
        self.assertEqual(r.header("content-type"), "application/problem+json")
        r = self.put(b"\x89PNG\r\n\x1a\n" + b"not really a png after the signature" * 4)
        self.assertEqual(r.status, 415, r.body)
        r = self.put(PNG[:-12])  # cut off before IEND
        self.assertEqual(r.status, 415, r.body)
        self.assertEqual(self.c.get(self.path, token=self.t).status, 404)

    def test_real_images_round_trip_with_etag_and_caching(self):
        for data, ctype in ((PNG, "image/png"), (JPEG, "image/jpeg"), (WEBP, "image/webp")):
            r = self.put(data, "application/octet-stream")  # the type comes from the bytes
            self.assertEqual(r.status, 200, r.body)
            etag = '"%s"' % hashlib.sha256(data).hexdigest()
            self.assertEqual(r.json, {"content_type": ctype, "size": len(data), "etag": etag})
            g = self.c.get(self.path, token=self.t)
            self.assertEqual(g.status, 200)
            self.assertEqual(g.body, data)
            self.assertEqual(g.header("content-type"), ctype)
            self.assertEqual(g.header("etag"), etag)
            self.assertIn("private", g.header("cache-control"))
            self.assertIn("max-age=", g.header("cache-control"))
            n = self.c.get(self.path, token=self.t, headers={"If-None-Match": etag})
            self.assertEqual(n.status, 304)
            self.assertEqual(n.body, b"")
            self.assertEqual(n.header("etag"), etag)
        me = self.c.get("/v1/users/me", token=self.t).json
        self.assertEqual(me["avatar"]["content_type"], "image/webp")
        self.assertEqual(me["avatar"]["size"], len(WEBP))

    def test_too_large_is_413(self):
        big = PNG[:-12] + b"\0" * (512 * 1024) + PNG[-12:]
        r = self.put(big)
        self.assertEqual(r.status, 413, r.body)


class AdminListTest(unittest.TestCase):
    def setUp(self):
        self.c = client()

    def test_only_admins_list(self):
        _, t = new_user(self.c)
        self.assertEqual(self.c.get("/v1/users", token=bearer(t)).status, 403)
        self.assertEqual(self.c.get("/v1/users").status, 401)

    def test_pages_cover_everyone_once(self):
        mine = {new_user(self.c)[0]["user_id"] for _ in range(3)}
        _, admin = new_admin(self.c)
        seen, cursor, pages = [], None, 0
        while True:
            q = "/v1/users?limit=2" + (f"&cursor={cursor}" if cursor else "")
            r = self.c.get(q, token=bearer(admin))
            self.assertEqual(r.status, 200, r.body)
            self.assertLessEqual(len(r.json["items"]), 2)
            seen += [p["id"] for p in r.json["items"]]
            cursor, pages = r.json["next_cursor"], pages + 1
            if cursor is None:
                break
        self.assertEqual(len(seen), len(set(seen)), "a profile appeared twice")
        self.assertTrue(mine <= set(seen))
        self.assertGreater(pages, 1)

    def test_bad_paging_parameters_are_400(self):
        _, admin = new_admin(self.c)
        for q in ("limit=0", "limit=abc", "limit=101", "cursor=bm90LWEtY3Vyc29y", "cursor=%21%21"):
            r = self.c.get(f"/v1/users?{q}", token=bearer(admin))
            self.assertEqual(r.status, 400, (q, r.body))


if __name__ == "__main__":
    unittest.main()
