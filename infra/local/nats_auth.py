"""NATS users and subject permissions for moonport's roles (stdlib only).

Services believe the Auth-Sub / Auth-Roles headers, so the bus itself is
locked: every role connects with its own user and a random password, and
nats-server lets each user touch only its own subjects:

  gateway   publishes the public operations <svc>.v1.> of every service (the
            Lua BFFs run in the gateway process too); reads its own replies
            (_INBOX.gateway.>) and the session revocations Auth publishes.
  <svc>     subscribes to its own <svc>.v1.> in its queue group <svc>, replies
            to what it was asked (allow_responses), publishes only its own
            events events.<svc>.>, answers $SRV.> discovery, reads its own
            replies (_INBOX.<svc>.>); JetStream API access only when it uses
            JetStream; calls to other services only when listed in CALLS.
  backup    not a role: the user `moonport backup` / `moonport restore` run as
            (docs/operations.md): the EVENTS stream's info, snapshot, restore
            and delete API and the chunks they exchange, $SRV.PING to see
            whether services run, its own replies; nothing else.
  moonport  the union of all of the above, for `moonport serve` running every
            role in one process on one connection (make run, the test suite),
            and the tools run with the local config.
  test      everything; only in throwaway test stacks, for integration tests
            and black-box test helpers that stand in for a service.

Replies: every role's connection uses the inbox prefix _INBOX.<user>
(core/serve.c derives it from nats.user), so no role can read another's
replies. Passwords are generated once into <root>/secrets/nats/<user>
(mode 0600) and reused; nats.conf is rewritten on every start.

A new services/<name>/ folder is picked up by itself. When a service starts
calling another service, publishing another domain's events or using
JetStream, add it to CALLS / PUBLISHES / JETSTREAM below: least privilege is
data, reviewed like code.

Deployments (docker compose, the Helm chart) use the same users and
permissions from committed files this module generates (DEPLOY_FILES): one
user per role, no `moonport` or `test` user, and each password a nats-server
environment reference $NATS_PASSWORD_<USER> (password_env) that the
deployment fills from its secrets. After changing anything here, or adding a
service, regenerate them (tests/blackbox/test_deploy_files.py fails until then):

  python3 infra/local/nats_auth.py --write         # rewrite the deploy files
  python3 infra/local/nats_auth.py --check         # exit 1 when one is stale
  python3 infra/local/nats_auth.py --conf-template # print the authorization block
"""
from __future__ import annotations

import argparse, json, os, secrets, sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def discovered() -> set[str]:
    """Every services/<name>/ with its <name>.yaml descriptor (the gateway is a role, not a service)."""
    d = os.path.join(ROOT, "services")
    return {n for n in (os.listdir(d) if os.path.isdir(d) else ())
            if n != "gateway" and os.path.isfile(os.path.join(d, n, f"{n}.yaml"))}


# every service the gateway may call: the planned ones and any folder under services/; one that does not
# exist yet costs nothing
SERVICES = tuple(sorted({"auth", "user", "product", "order", "payment", "notification"} | discovered()))
# service -> the subjects of other services it requests (empty: it calls nobody)
CALLS: dict[str, tuple[str, ...]] = {
    # a registration creates the profile inside Auth's transaction (docs/services.md#auth)
    "auth": ("user.v1.provision",),
    # prices and stock for an order; the owner's locale for its notifications (docs/services.md#order)
    "order": ("product.v1.lookup", "product.v1.reserve", "product.v1.release", "user.v1.get"),
}
# service -> events of other domains it may publish besides its own events.<svc>.> (docs/events.md)
PUBLISHES: dict[str, tuple[str, ...]] = {"order": ("events.notification.requested",)}
# services that publish to or consume from JetStream (stream EVENTS)
JETSTREAM = {"user", "product", "order", "payment", "notification"}
# plain subscriptions beyond a role's own operations
SUBSCRIBES: dict[str, tuple[str, ...]] = {"gateway": ("events.auth.session_revoked",)}

# operator tools with a NATS user of their own (not roles: no Deployment, no service subjects)
TOOLS = ("backup",)
BACKUP_STREAM = "EVENTS"  # core/include/mp/events.h

ALL_IN_ONE = "moonport"
TEST_SERVICES = ("echo",)
TEST_USER = "test"


def role_permissions(role: str, services: tuple[str, ...] = SERVICES) -> dict:
    """The nats-server permissions block for one role user."""
    inbox = f"_INBOX.{role}.>"
    if role == "gateway":
        pub = [f"{s}.v1.>" for s in services]
        sub = [inbox, "$SRV.>", *SUBSCRIBES.get(role, ())]
    else:
        pub = [f"events.{role}.>", *PUBLISHES.get(role, ()), *CALLS.get(role, ())]
        # "<subject> <queue>": only in its own queue group, so an instance cannot skim a replica's share
        sub = [f"{role}.v1.> {role}", "$SRV.>", inbox, *SUBSCRIBES.get(role, ())]
        if role in JETSTREAM:
            pub += ["$JS.API.>", "$JS.ACK.>"]
    return {"publish": {"allow": pub}, "subscribe": {"allow": sub}, "allow_responses": True}


def tool_permissions(tool: str) -> dict:
    """The permissions block for an operator tool's user (TOOLS)."""
    assert tool == "backup", tool
    api = [f"$JS.API.STREAM.{verb}.{BACKUP_STREAM}" for verb in ("INFO", "SNAPSHOT", "RESTORE", "DELETE")]
    # snapshot chunks are acked on $JS.SNAPSHOT.ACK.<stream>.>, restore chunks sent to $JS.SNAPSHOT.RESTORE.<stream>.>
    chunks = [f"$JS.SNAPSHOT.ACK.{BACKUP_STREAM}.>", f"$JS.SNAPSHOT.RESTORE.{BACKUP_STREAM}.>"]
    return {"publish": {"allow": [*api, *chunks, "$SRV.PING"]}, "subscribe": {"allow": [f"_INBOX.{tool}.>"]},
            "allow_responses": True}


def permissions(user: str, services: tuple[str, ...] = SERVICES) -> dict:
    """The permissions block of a role's or a tool's user."""
    return tool_permissions(user) if user in TOOLS else role_permissions(user, services)


def union_permissions(roles: list[str], services: tuple[str, ...] = SERVICES) -> dict:
    pub, sub = [], []
    for r in roles:
        p = permissions(r, services)
        pub += [x for x in p["publish"]["allow"] if x not in pub]
        sub += [x for x in p["subscribe"]["allow"] if x not in sub]
    # one process answers with one connection: its replies arrive under _INBOX.moonport
    sub = [f"_INBOX.{ALL_IN_ONE}.>" if x.startswith("_INBOX.") else x for x in sub]
    return {"publish": {"allow": list(dict.fromkeys(pub))}, "subscribe": {"allow": list(dict.fromkeys(sub))},
            "allow_responses": True}


def roles() -> list[str]:
    return ["gateway", *SERVICES]


def users() -> list[str]:
    """Every user a deployment has: one per role and one per tool."""
    return [*roles(), *TOOLS]


def user_for(roles_arg: str | None) -> str:
    """The NATS user a `moonport serve --roles <roles_arg>` process connects as."""
    names = [r for r in (roles_arg or "").split(",") if r]
    if len(names) == 1 and names[0] in roles():
        return names[0]
    return ALL_IN_ONE


def password(secrets_dir: str, user: str) -> str:
    """The user's password, generated into secrets_dir/<user> on first use."""
    os.makedirs(secrets_dir, mode=0o700, exist_ok=True)
    path = os.path.join(secrets_dir, user)
    try:
        with open(path) as f:
            pw = f.read().strip()
        if pw:
            return pw
    except OSError:
        pass
    pw = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(pw + "\n")
    return pw


def authorization_block(secrets_dir: str, with_test_user: bool) -> str:
    """The `authorization { users = [...] }` block for nats.conf."""
    entries = []
    # throwaway test stacks also have the stand-in service mp-echo (tests/tools/echo.c) that BFF tests call
    services = SERVICES + TEST_SERVICES if with_test_user else SERVICES
    for r in users():
        entries.append({"user": r, "password": password(secrets_dir, r), "permissions": permissions(r, services)})
    entries.append({"user": ALL_IN_ONE, "password": password(secrets_dir, ALL_IN_ONE),
                    "permissions": union_permissions(users(), services)})
    if with_test_user:
        entries.append({"user": TEST_USER, "password": password(secrets_dir, TEST_USER),
                        "permissions": {"publish": {"allow": [">"]}, "subscribe": {"allow": [">"]}}})
    return _authorization(entries)


def _authorization(users: list[dict]) -> str:
    lines = ",\n".join("    " + json.dumps(u) for u in users)
    return f"authorization {{\n  users = [\n{lines}\n  ]\n}}\n"


# ---- deployments ---------------------------------------------------------------------

def password_env(user: str) -> str:
    """The environment variable a deployment's nats-server reads `user`'s password from."""
    return "NATS_PASSWORD_" + user.upper()


def conf_template() -> str:
    """The authorization block for deployments: one user per role (split roles, so no `moonport`
    union user and no `test` user) and one per tool, passwords as unquoted $NATS_PASSWORD_<USER> references, which
    nats-server resolves from its environment (a quoted "$X" would be the literal string)."""
    entries = []
    for r in users():
        ref = "$" + password_env(r)
        entries.append({"user": r, "password": ref, "permissions": permissions(r)})
    text = _authorization(entries)
    for r in users():
        ref = "$" + password_env(r)
        text = text.replace(json.dumps(ref), ref)
    return text


COMPOSE_CONF = "infra/compose/nats.conf"
HELM_CONF = "infra/helm/moonport/files/nats-authorization.conf"
_HEADER = ("# GENERATED by `python3 infra/local/nats_auth.py --write`: do not edit (a test compares).\n"
           "# One NATS user per moonport role, and per tool (backup), with the subject permissions of\n"
           "# infra/local/nats_auth.py; each password comes from nats-server's environment variable\n"
           "# NATS_PASSWORD_<USER>.\n")


def deploy_files() -> dict[str, str]:
    """Path (relative to the repository) -> content of every committed file generated from this module."""
    return {
        # the compose nats service's whole configuration; it adds `-m 8222` for its healthcheck
        COMPOSE_CONF: _HEADER + "\njetstream {\n  store_dir: /data\n}\n\n" + conf_template(),
        # the Helm chart's: only the block, for operators to include in their own NATS server's configuration
        HELM_CONF: _HEADER + "# Include it in the NATS server's configuration (docs/deploy-kubernetes.md).\n\n"
                             + conf_template(),
    }


def stale_deploy_files() -> list[str]:
    """The generated files whose committed content differs from what this module generates."""
    out = []
    for rel, text in deploy_files().items():
        try:
            with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
                same = f.read() == text
        except OSError:
            same = False
        if not same:
            out.append(rel)
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description="NATS users and permissions for moonport's deployments")
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--conf-template", action="store_true", help="print the deployments' authorization block")
    mode.add_argument("--write", action="store_true", help="rewrite " + ", ".join(deploy_files()))
    mode.add_argument("--check", action="store_true", help="exit 1 when a generated file is stale")
    a = ap.parse_args(argv)
    if a.conf_template:
        sys.stdout.write(conf_template())
        return 0
    stale = stale_deploy_files()
    if a.check:
        for rel in stale:
            print(f"{rel} is stale: python3 infra/local/nats_auth.py --write", file=sys.stderr)
        return 1 if stale else 0
    for rel in stale:
        with open(os.path.join(ROOT, rel), "w", encoding="utf-8") as f:
            f.write(deploy_files()[rel])
        print(f"wrote {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
