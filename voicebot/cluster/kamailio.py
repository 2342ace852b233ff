"""The Kamailio 5.6 configuration of the cluster's SIP front, generated from voicebot.yaml.

Kamailio is the one SIP address trunks and agent phones talk to. It keeps no call state beyond transactions: new
INVITEs from trusted sources go to a bot node chosen by the dispatcher module, every dialog is record-routed through
it, and in-dialog requests follow loose routing, only for dialogs it set up (481 otherwise: a made-up To tag would
take an INVITE to a trunk unchecked). The front knows its dialogs without remembering them: it signs each
Record-Route (``;sig=``, the SHA-256 of the Call-ID, the caller's tag and the cluster's secret) and routes an
in-dialog request only if its Route carries that signature, so calls keep their BYE and re-INVITE across a restart
of Kamailio. Without the secret it falls back to the dialog module's records in memory (lost on a restart). Agent
phones REGISTER with Kamailio (usrloc, in memory), so any node reaches any agent at ``sip:AGENT@front``: cross-node
transfers need no node-to-node signalling.

Dispatcher algorithm 10 (call load): a new call goes to the node with the fewest calls in progress (tracked by
Call-ID inside the dispatcher). Bot calls differ a lot in length (a 30 s order lookup, a 10 min
call held for an agent), so counting calls balances better than round robin or fixed weights; the nodes are
probed with OPTIONS every ``ping_interval_s`` and taken out after ``probing_threshold`` missed answers, and an
INVITE that times out or gets a 5xx from a node is retried on the next node (``ds_next_dst``).

Trunks and agent phones prove who they are here, as they would to a single node:

- A trunk with ``register: true`` is registered by Kamailio (uac module, ``uac_reg``) with Kamailio's address in
  the Contact (``sip:USERNAME@front``), refreshed before it expires and retried every ``register_retry_s`` after a
  failure; every change of a trunk's registration state is logged (``trunk NAME: registered`` / ``... failed``).
  The nodes never register themselves: their one trunk is the front. uac_reg insists on a database table: it gets
  an empty db_text table in the run folder, and the records are added at start-up over Kamailio's own RPC with the
  password read from the environment variable the trunk names (``$env(NAME)``), so no password is in any file.
- INVITEs from outside the trusted networks are challenged (407, realm ``voicebot``) when a trunk has
  ``inbound_auth``: the right username and password are let in (their P-Asserted-Identity removed, as a single node
  does for calls let in by digest only), wrong ones get 403.
- An agent whose ``sip_password_env`` is set must prove its password (digest, 401) to REGISTER as the user of its
  ``contact``, from any network; a wrong one gets 403. Other REGISTERs are accepted from trusted networks only,
  without a password (``open_registration_warning`` says so at start-up).
- A node's call out through a trunk names the trunk in ``X-Voicebot-Trunk``: accepted from the nodes' addresses
  only (403 for anyone else), then challenged (407, realm ``voicebot-cluster``) and let through only with the
  cluster's secret (``$env(cluster.secret_env)``; unset: 503), since a node's address is every local program's too;
  the node's credentials are removed before the INVITE goes on to the trunk, and the trunk's first 401/407 answered
  with its credentials (uac ``uac_auth()``, the password from ``$env(NAME)``); a second challenge goes back to the
  node.
- pike limits every source's request rate before any of this.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from telephony.config import TrunkConfig
from telephony.queue.config import AgentConfig
from telephony.sip.invite import (
    FRONT_REALM,
    FRONT_REFUSED,
    NO_SECRET_AT_FRONT,
    NO_SUCH_TRUNK,
    TRUNK_HEADER,
    WRONG_SECRET,
)

DISPATCHER_SET = 1
REALM = "voicebot"  # the digest realm of inbound calls and agent registrations, as on a single node
REGISTRATION_TABLE = "uacreg"
# What may be spliced into the generated config: no quotes, no `$` (Kamailio's variables), no backslashes.
_SAFE = re.compile(r"^[A-Za-z0-9_.:@+\-\[\]]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _safe(what: str, value: str, pattern: re.Pattern[str] = _SAFE) -> str:
    if not pattern.match(value):
        raise ValueError(f"{what} {value!r} cannot go into the Kamailio config (letters, digits and . _ - : @ + [ ] only)")
    return value


@dataclass(frozen=True)
class Credential:
    """A SIP user name whose requests must carry digest credentials for the password in the environment
    variable ``password_env`` (read by Kamailio, never written into its config)."""

    username: str
    password_env: str


@dataclass(frozen=True)
class TrunkRegistration:
    """A trunk Kamailio registers with: as ``username`` at ``host:port``, Contact ``sip:USERNAME@front``."""

    trunk: str
    username: str
    host: str
    port: int
    transport: str
    password_env: str
    expires: int


@dataclass(frozen=True)
class OutboundTrunk:
    """A trunk the nodes call out through the front: where it is, and the credentials the front answers its
    challenges with (``username`` and the password in ``password_env``; None: the trunk has none)."""

    name: str
    host: str
    port: int
    transport: str
    username: str | None = None
    password_env: str | None = None


@dataclass(frozen=True)
class Node:
    """A bot node as the dispatcher sees it: its id and the UDP address it takes SIP on."""

    node_id: str
    host: str
    port: int
    max_calls: int = 50

    @property
    def uri(self) -> str:
        return f"sip:{self.host}:{self.port}"


@dataclass(frozen=True)
class FrontConfig:
    """What the generated config depends on. ``trusted`` networks may call in and register phones without a
    password; those in ``trusted_identity`` also keep their P-Asserted-Identity (everyone else's is removed before a
    node sees it). ``inbound_auth`` and ``agent_auth`` let callers and agent phones in from anywhere by password;
    ``registrations`` are the trunks the front registers with (they need ``run_dir``)."""

    listen_host: str
    listen_port: int
    dispatcher_list: Path
    advertise: str | None = None  # the public address in Record-Route/Via when listen_host is a private one
    also_listen: tuple[str, ...] = ()  # more addresses on the same port, e.g. 127.0.0.1 towards local nodes
    trusted: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    trusted_identity: tuple[str, ...] = ()
    tls_port: int | None = None
    tls_config: Path | None = None
    ping_interval_s: int = 1
    probing_threshold: int = 1
    node_timeout_ms: int = 2000
    pike_requests: int = 100  # requests per source per 2 s sampling unit before the source is dropped
    children: int = 4
    modules_dir: str | None = None  # None: Kamailio's own (the Debian package's) module folder
    extra_aliases: tuple[str, ...] = field(default_factory=tuple)
    registrations: tuple[TrunkRegistration, ...] = ()
    inbound_auth: tuple[Credential, ...] = ()  # trunks whose INVITEs from untrusted addresses are challenged
    agent_auth: tuple[Credential, ...] = ()  # agent phones that must prove their password to REGISTER
    outbound: tuple[OutboundTrunk, ...] = ()  # trunks the nodes call out through (named in X-Voicebot-Trunk)
    # The environment variable holding the cluster's secret a node proves (digest, FRONT_REALM) to call out, and
    # with which the front signs its dialogs' Record-Route.
    node_secret_env: str = "VOICEBOT_CLUSTER_SECRET"
    run_dir: Path | None = None  # Kamailio's run folder (-Y): the registration table and the RPC FIFO live there
    register_retry_s: int = 30
    register_check_s: int = 5  # how often registration states are looked at (refreshes and the log)


def trusted_from_trunks(trunks: list[TrunkConfig]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(networks allowed to call, networks whose P-Asserted-Identity is kept) from the trunk list, as the bot
    decides on its own (telephony.access): no trunk configured means loopback only."""
    if not trunks:
        return ("127.0.0.0/8", "::1/128"), ()
    allowed: list[str] = []
    identity: list[str] = []
    for trunk in trunks:
        nets = [str(n) for n in trunk.networks()]
        allowed += nets
        if trunk.trust_asserted_identity:
            identity += nets
    return tuple(dict.fromkeys(allowed)), tuple(dict.fromkeys(identity))


def registrations_from_trunks(trunks: list[TrunkConfig]) -> tuple[TrunkRegistration, ...]:
    """The registrations the front makes: one per trunk with ``register: true``."""
    regs = []
    for t in trunks:
        if t.register_ and t.username and t.password_env:
            regs.append(TrunkRegistration(t.name, t.username, t.host, t.port, t.transport, t.password_env,
                                          t.register_expires))
    users = [r.username for r in regs]
    if len(users) != len(set(users)):
        raise ValueError("trunks that register must have different usernames: the front's Contact is "
                         "sip:USERNAME@front")
    return tuple(regs)


def inbound_auth_from_trunks(trunks: list[TrunkConfig]) -> tuple[Credential, ...]:
    """The credentials INVITEs from untrusted addresses are checked against: trunks with ``inbound_auth``."""
    return tuple(Credential(t.username, t.password_env) for t in trunks
                 if t.inbound_auth and t.username and t.password_env)


def outbound_from_trunks(trunks: list[TrunkConfig]) -> tuple[OutboundTrunk, ...]:
    """The trunks the nodes may call out through: every configured one, with its credentials if it has both."""
    return tuple(OutboundTrunk(t.name, t.host, t.port, t.transport, t.username if t.password_env else None,
                               t.password_env if t.username else None) for t in trunks)


def agent_credentials(agents: list[AgentConfig]) -> tuple[Credential, ...]:
    """The agent phones that must prove a password to register: agents with a SIP contact and ``sip_password_env``."""
    return tuple(Credential(a.sip_user, a.sip_password_env) for a in agents
                 if a.sip_password_env and a.sip_user)


def front_config(trunks: list[TrunkConfig], agents: list[AgentConfig], listen_host: str, listen_port: int,
                 dispatcher_list: Path, run_dir: Path, **options: object) -> FrontConfig:
    """The front for these trunks and agents: who is trusted, which trunks it registers with, whose INVITEs and
    REGISTERs it challenges; ``options`` are FrontConfig's other fields (advertise, TLS...).
    Raises ValueError for a trunk the front cannot register with."""
    trusted, identity = trusted_from_trunks(trunks)
    return FrontConfig(listen_host, listen_port, dispatcher_list, trusted=trusted, trusted_identity=identity,
                       registrations=registrations_from_trunks(trunks), inbound_auth=inbound_auth_from_trunks(trunks),
                       agent_auth=agent_credentials(agents), outbound=outbound_from_trunks(trunks), run_dir=run_dir,
                       **options)  # type: ignore[arg-type]


def write_front(cfg: FrontConfig, path: Path) -> None:
    """Write ``cfg`` rendered to ``path`` (kamailio.cfg) and, if it registers with trunks, the empty registration
    table its run folder needs. Raises ValueError for a config that cannot be rendered."""
    text = render(cfg)
    if cfg.registrations and cfg.run_dir is not None:
        write_registration_table(cfg.run_dir)
    path.write_text(text)


def open_registration_warning(cfg: FrontConfig) -> str:
    """The start-up warning that REGISTER is accepted without a password from trusted networks (for every name but
    those of agents with ``sip_password_env``)."""
    if cfg.agent_auth:
        return ("agent phones without sip_password_env register from trusted networks "
                f"({', '.join(cfg.trusted)}) without a password")
    return (f"agent phones register with the SIP front from trusted networks ({', '.join(cfg.trusted)}) without a "
            "password: set agents[].sip_password_env to make them prove who they are")


def write_registration_table(run_dir: Path) -> None:
    """The empty db_text table uac_reg loads at start-up (the records come over RPC, passwords from the
    environment)."""
    db = run_dir / "db"
    db.mkdir(parents=True, exist_ok=True)
    (db / REGISTRATION_TABLE).write_text(
        "id(int,auto) l_uuid(string) l_username(string) l_domain(string) r_username(string) r_domain(string) "
        "realm(string) auth_username(string) auth_password(string) auth_ha1(string) auth_proxy(string) "
        "expires(int) flags(int) reg_delay(int) contact_addr(string) socket(string) \n")
    (db / "version").write_text(f"table_name(string) table_version(int) \n{REGISTRATION_TABLE}:5\n")


def dispatcher_list(nodes: list[Node]) -> str:
    """The dispatcher.list file: one line per node (set, URI, flags, priority, attributes)."""
    lines = ["# set uri flags priority attrs (generated by voicebot cluster)"]
    for node in nodes:
        lines.append(f"{DISPATCHER_SET} {node.uri} 0 0 duid={node.node_id};maxload={node.max_calls}")
    return "\n".join(lines) + "\n"


def _set_if(networks: tuple[str, ...], var: str) -> str:
    """Kamailio lines setting ``$var(var)`` to 1 when the request's source address is in one of ``networks``."""
    if not networks:
        return ""
    tests = []
    for net in networks:
        ipaddress.ip_network(net, strict=False)  # a bad entry fails here, not in Kamailio's parser
        tests.append(f'is_in_subnet("$si", "{net}")')
    return f"    if ({' || '.join(tests)}) {{\n        $var({var}) = 1;\n    }}\n"


def _env(password_env: str, *, json_string: bool = False) -> str:
    """The Kamailio expression of an environment variable's value; ``json_string``: escaped to go inside one."""
    name = _safe("password_env", password_env, _ENV_NAME)
    return f"$(env({name}){{s.escape.common}})" if json_string else f"$env({name})"


def _password_lookup(credentials: tuple[Credential, ...], user_var: str) -> str:
    """Lines setting ``$var(known)`` and ``$var(pw)`` to the password of the user in ``user_var``."""
    lines = ["    $var(known) = 0;"]
    for i, cred in enumerate(credentials):
        test = "if" if i == 0 else "} else if"
        lines.append(f'    {test} ({user_var} == "{_safe("SIP username", cred.username)}") {{')
        lines.append(f"        $var(known) = 1;\n        $var(pw) = {_env(cred.password_env)};")
    if credentials:
        lines.append("    }")
    return "\n".join(lines) + "\n"


def _inbound_auth_route(cfg: FrontConfig) -> str:
    """route[INBOUND_AUTH], run for an INVITE from an untrusted address: exits with 407/403, or returns when the
    request carries a trunk's right credentials."""
    if not cfg.inbound_auth:
        return """route[INBOUND_AUTH] {
    xlog("L_WARN", "INVITE from untrusted $si refused\\n");
    sl_send_reply("403", "Forbidden");
    exit;
}
"""
    return f"""route[INBOUND_AUTH] {{
    if (!is_present_hf("Proxy-Authorization")) {{
        proxy_challenge("{REALM}", "1");
        exit;
    }}
{_password_lookup(cfg.inbound_auth, "$au")}    if ($var(known) == 1) {{
        pv_proxy_authenticate("{REALM}", "$var(pw)", "0");
        $var(rc) = $rc;
        if ($var(rc) > 0) {{
            consume_credentials();
            return;
        }}
        # An old or reused nonce: a fresh challenge, not a refusal.
        if ($var(rc) == -3 || $var(rc) == -4 || $var(rc) == -5 || $var(rc) == -6) {{
            proxy_challenge("{REALM}", "1");
            exit;
        }}
    }}
    xlog("L_WARN", "INVITE from untrusted $si with wrong credentials (user $au) refused\\n");
    sl_send_reply("403", "Forbidden");
    exit;
}}
"""


def _agent_auth_route(cfg: FrontConfig) -> str:
    """route[AGENT_AUTH], run for every REGISTER: for an agent with a password, exits with 401/403 unless the
    credentials are right (then ``$var(agent_authed)`` is 1); returns at once for any other user."""
    head = "route[AGENT_AUTH] {\n    $var(agent_authed) = 0;\n"
    if not cfg.agent_auth:
        return head + "}\n"
    return head + _password_lookup(cfg.agent_auth, "$tU") + f"""    if ($var(known) != 1) {{
        return;
    }}
    # The credentials' user must be the registered one (checks=1): no registering as another agent.
    pv_auth_check("{REALM}", "$var(pw)", "0", "1");
    $var(rc) = $rc;
    if ($var(rc) > 0) {{
        consume_credentials();
        $var(agent_authed) = 1;
        return;
    }}
    if ($var(rc) == -3 || $var(rc) == -4 || $var(rc) == -5 || $var(rc) == -6) {{
        www_challenge("{REALM}", "1");
        exit;
    }}
    xlog("L_WARN", "REGISTER as agent $tU from $si with wrong credentials (user $au) refused\\n");
    sl_send_reply("403", "Forbidden");
    exit;
}}
"""


def _registration_parts(cfg: FrontConfig) -> tuple[str, str]:
    """(module lines, routes) of the trunk registrations: uac_reg with an empty db_text table, the records added
    over RPC in the first worker with the passwords from the environment, and a timer logging state changes."""
    if not cfg.registrations:
        return "", ""
    if cfg.run_dir is None:
        raise ValueError("trunk registration at the front needs run_dir (its registration table and RPC FIFO)")
    front = cfg.advertise or cfg.listen_host
    contact = f"{front}:{cfg.listen_port}"
    shv = ";".join(f"reg_{i}=i:0" for i in range(len(cfg.registrations)))
    modules = f"""loadmodule "db_text.so"
loadmodule "jsonrpcs.so"
loadmodule "uac.so"
loadmodule "rtimer.so"
modparam("jsonrpcs", "transport", 2)
modparam("jsonrpcs", "fifo_name", "{cfg.run_dir / 'kamailio_rpc.fifo'}")
modparam("jsonrpcs", "fifo_mode", 0600)
modparam("uac", "reg_db_url", "text://{cfg.run_dir / 'db'}")
modparam("uac", "reg_contact_addr", "{contact}")
modparam("uac", "reg_timer_interval", {cfg.register_check_s})
modparam("uac", "reg_retry_interval", {cfg.register_retry_s})
modparam("uac", "reg_keep_callid", 1)
modparam("pv", "shvset", "{shv}")
modparam("rtimer", "timer", "name=registrations;interval={cfg.register_check_s};mode=1;")
modparam("rtimer", "exec", "timer=registrations;route=REGISTRATION_STATE")
"""
    adds, checks = [], []
    for i, reg in enumerate(cfg.registrations):
        if reg.transport == "tls" and cfg.tls_port is None:
            raise ValueError(f"trunk {reg.trunk} registers over TLS: the SIP front needs TLS too (tls_port and "
                             "tls_config; `voicebot cluster kamailio-config --tls-port --tls-config`)")
        default_port = 5061 if reg.transport == "tls" else 5060
        host = _safe("trunk host", reg.host)
        domain = host if reg.port == default_port else f"{host}:{reg.port}"
        proxy = f"sip:{host}:{reg.port}" + ("" if reg.transport == "udp" else f";transport={reg.transport}")
        user = _safe("trunk username", reg.username)
        name = _safe("trunk name", reg.trunk)
        params = [user, user, front, user, domain, "", user, "@PASSWORD@", ".", proxy, reg.expires, 0, 0, ".", "."]
        body = json.dumps({"jsonrpc": "2.0", "method": "uac.reg_add", "params": params, "id": i + 1})
        adds.append(f"""    jsonrpc_exec('{body.replace('"@PASSWORD@"', '"' + _env(reg.password_env, json_string=True) + '"')}');
    if ($jsonrpl(code) != 200) {{
        xlog("L_ERR", "trunk {name}: cannot add its registration: $jsonrpl(body)\\n");
    }}
""")
        checks.append(f"""    $var(state) = uac_reg_status("{user}");
    if ($var(state) != $shv(reg_{i}) && $var(state) != -2) {{
        if ($var(state) == 1) {{
            xlog("L_NOTICE", "trunk {name}: registered with {domain} as {user} (Contact sip:{user}@{contact})\\n");
        }} else {{
            xlog("L_ERR", "trunk {name}: registration with {domain} as {user} failed (state $var(state)), retrying every {cfg.register_retry_s} s\\n");
        }}
        $shv(reg_{i}) = $var(state);
    }}
""")
    routes = ("\n# Trunk registrations: added once Kamailio runs, passwords from the environment.\n"
              "event_route[core:worker-one-init] {\n" + "".join(adds) + "}\n\n"
              "# A line in the log whenever a trunk's registration state changes.\n"
              "route[REGISTRATION_STATE] {\n" + "".join(checks) + "}\n")
    return modules, routes


def _outbound_parts(cfg: FrontConfig) -> tuple[str, str]:
    """(module lines, routes) of calls the nodes place through trunks: route[TO_TRUNK] sends a node's INVITE to the
    trunk its X-Voicebot-Trunk header names, and failure_route[TRUNK_AUTH] answers the trunk's first 401/407 with
    its credentials (uac_auth, the password from Kamailio's environment); a second challenge goes back to the node.
    The dialog module raises the CSeq of the answered INVITE and of the node's later requests in the call, as the
    trunk expects after a challenge (RFC 3261 §22.2)."""
    if not cfg.outbound:
        return "", f"""route[TO_TRUNK] {{
    xlog("L_ERR", "node $si asked to call out through trunk $hdr({TRUNK_HEADER}): the front has no trunks\\n");
    sl_send_reply("404", "{NO_SUCH_TRUNK}");
    exit;
}}
"""
    modules = (("" if cfg.registrations else 'loadmodule "uac.so"\n')
               + 'modparam("dialog", "track_cseq_updates", 1)\n'
               'modparam("uac", "auth_username_avp", "$avp(trunk_user)")\n'
               'modparam("uac", "auth_password_avp", "$avp(trunk_pw)")\n'
               '# Left unset: the credentials answer whatever realm the trunk names.\n'
               'modparam("uac", "auth_realm_avp", "$avp(trunk_realm)")\n')
    secret = _env(cfg.node_secret_env)
    targets: list[str] = []
    creds: list[str] = []
    for i, trunk in enumerate(cfg.outbound):
        test = "if" if i == 0 else "} else if"
        name = _safe("trunk name", trunk.name)
        host = _safe("trunk host", trunk.host)
        targets.append(f'    {test} ($var(trunk) == "{name}") {{')
        if trunk.transport == "tls" and cfg.tls_port is None:
            targets.append(f'        xlog("L_ERR", "trunk {name} takes TLS and the front has none: call $ci refused\\n");\n'
                           '        sl_send_reply("503", "Trunk Needs TLS At The Front");\n        exit;')
        else:
            params = "" if trunk.transport == "udp" else f";transport={trunk.transport}"
            targets.append(f'        $du = "sip:{host}:{trunk.port}{params}";')
        if trunk.username and trunk.password_env:
            test = "if" if not creds else "} else if"
            creds.append(f'    {test} ($avp(trunk) == "{name}") {{\n'
                         f'        $avp(trunk_user) = "{_safe("trunk username", trunk.username)}";\n'
                         f"        $avp(trunk_pw) = {_env(trunk.password_env)};\n"
                         "        $var(known) = 1;")
    lookup = "\n".join(creds) + ("\n    }\n" if creds else "\n")
    routes = f"""
# A node proves the cluster's secret (digest, realm {FRONT_REALM}) before its call goes out through a trunk: the
# node's address alone would let any program on its machine use the trunks. The credentials stay here.
route[NODE_AUTH] {{
    if ({secret} == $null || {secret} == "") {{
        xlog("L_ERR", "call out from $si:$sp through trunk $hdr({TRUNK_HEADER}) refused: {cfg.node_secret_env} (the cluster's secret) is not set in the SIP front's environment; set it to the nodes' value and restart Kamailio\\n");
        sl_send_reply("503", "{NO_SECRET_AT_FRONT}");
        exit;
    }}
    if (!is_present_hf("Proxy-Authorization")) {{
        proxy_challenge("{FRONT_REALM}", "1");
        exit;
    }}
    pv_proxy_authenticate("{FRONT_REALM}", "{secret}", "0");
    $var(rc) = $rc;
    if ($var(rc) > 0) {{
        consume_credentials();
        return;
    }}
    # An old nonce, or credentials for another realm: a fresh challenge, not a refusal.
    if ($var(rc) == -4 || $var(rc) == -5 || $var(rc) == -6) {{
        proxy_challenge("{FRONT_REALM}", "1");
        exit;
    }}
    xlog("L_WARN", "INVITE from $si:$sp (user $au) asking to call out through trunk $hdr({TRUNK_HEADER}) refused: wrong cluster secret. A node: set its {cfg.node_secret_env} to Kamailio's; anything else on that machine is trying to use the trunks\\n");
    sl_send_reply("403", "{WRONG_SECRET}");
    exit;
}}

# A node calls out through the trunk its X-Voicebot-Trunk header names (the header stays here).
route[TO_TRUNK] {{
    route(NODE_AUTH);
    $var(trunk) = $hdr({TRUNK_HEADER});
    remove_hf("{TRUNK_HEADER}");
{chr(10).join(targets)}
    }} else {{
        xlog("L_ERR", "node $si asked to call out through trunk $var(trunk), which the front does not know\\n");
        sl_send_reply("404", "{NO_SUCH_TRUNK}");
        exit;
    }}
    $avp(trunk) = $var(trunk);
    dlg_manage();
    t_on_failure("TRUNK_AUTH");
    route(RELAY);
}}

# The trunk's first challenge is answered with its credentials; a second one (a wrong username or password) and
# any other refusal go back to the node.
failure_route[TRUNK_AUTH] {{
    if (t_is_canceled()) {{
        exit;
    }}
    if (!t_check_status("401|407")) {{
        xlog("L_WARN", "trunk $avp(trunk) refused call $ci to $rU: $T_reply_code $T_reply_reason\\n");
        exit;
    }}
    if ($avp(trunk_authed) == 1) {{
        xlog("L_ERR", "trunk $avp(trunk) refused the front's credentials for call $ci to $rU (challenged again, $T_reply_code): check its username and the password in its password_env\\n");
        exit;
    }}
    $avp(trunk_authed) = 1;
    $var(known) = 0;
{lookup}    if ($var(known) != 1) {{
        xlog("L_ERR", "trunk $avp(trunk) asks for a password ($T_reply_code) for call $ci and has no username and password_env\\n");
        exit;
    }}
    if (!uac_auth()) {{
        xlog("L_ERR", "trunk $avp(trunk): cannot answer its challenge for call $ci (is its password_env set where Kamailio runs?)\\n");
        exit;
    }}
    t_on_failure("TRUNK_AUTH");
    if (!t_relay()) {{
        xlog("L_ERR", "trunk $avp(trunk): cannot send call $ci again with credentials\\n");
    }}
}}
"""
    return modules, routes


def render(cfg: FrontConfig) -> str:
    """The whole kamailio.cfg for ``cfg``."""
    adv = f" advertise {cfg.advertise}:{cfg.listen_port}" if cfg.advertise else ""
    listen = [f"listen={proto}:{cfg.listen_host}:{cfg.listen_port}{adv}" for proto in ("udp", "tcp")]
    listen += [f"listen={proto}:{host}:{cfg.listen_port}" for host in cfg.also_listen for proto in ("udp", "tcp")]
    tls_modules = ""
    if cfg.tls_port is not None:
        if cfg.tls_config is None:
            raise ValueError("TLS on the SIP front needs tls_config (Kamailio's tls.cfg with certificate and key)")
        listen.append(f"listen=tls:{cfg.listen_host}:{cfg.tls_port}")
        listen.append("enable_tls=yes")
        tls_modules = f'loadmodule "tls.so"\nmodparam("tls", "config", "{cfg.tls_config}")\n'
    if cfg.inbound_auth or cfg.agent_auth or cfg.outbound:
        # A nonce answers only the request it was issued for (its Call-ID, From tag and source address): the
        # credentials of one call cannot open another.
        tls_modules += 'loadmodule "auth.so"\nmodparam("auth", "auth_checks_no_dlg", 14)\n'
    reg_modules, reg_routes = _registration_parts(cfg)
    out_modules, out_routes = _outbound_parts(cfg)
    aliases = "\n".join(f'alias="{a}"' for a in cfg.extra_aliases)
    header = f"""#!KAMAILIO
# Generated by `voicebot cluster` (voicebot/cluster/kamailio.py) from voicebot.yaml: edit that, not this file.

debug=2
log_stderror=yes
children={cfg.children}
tcp_children={cfg.children}
auto_aliases=no
{chr(10).join(listen)}
{aliases}
server_header="Server: voicebot-front"
user_agent_header="User-Agent: voicebot-front"
{f'mpath="{cfg.modules_dir}"' if cfg.modules_dir else ""}

loadmodule "kex.so"
loadmodule "corex.so"
loadmodule "tm.so"
loadmodule "tmx.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "sanity.so"
loadmodule "ipops.so"
loadmodule "pike.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "dispatcher.so"
loadmodule "dialog.so"
{tls_modules}{reg_modules}{out_modules}
# A node that does not answer an INVITE with 100 Trying within this long is skipped for the next one.
modparam("tm", "fr_timer", {cfg.node_timeout_ms})
modparam("tm", "fr_inv_timer", 60000)
modparam("rr", "enable_full_lr", 0)
modparam("rr", "append_fromtag", 1)
modparam("usrloc", "db_mode", 0)
modparam("registrar", "max_expires", 3600)
modparam("pike", "sampling_time_unit", 2)
modparam("pike", "reqs_density_per_unit", {cfg.pike_requests})
modparam("pike", "remove_latency", 4)
modparam("dispatcher", "list_file", "{cfg.dispatcher_list}")
modparam("dispatcher", "flags", 2)
modparam("dispatcher", "ds_hash_size", 9)
modparam("dispatcher", "ds_ping_method", "OPTIONS")
modparam("dispatcher", "ds_ping_from", "sip:front@{cfg.listen_host}")
modparam("dispatcher", "ds_ping_interval", {cfg.ping_interval_s})
modparam("dispatcher", "ds_probing_threshold", {cfg.probing_threshold})
modparam("dispatcher", "ds_inactive_threshold", 1)
modparam("dispatcher", "ds_probing_mode", 1)
modparam("dispatcher", "ds_ping_reply_codes", "class=2")

route[TRUSTED] {{
    $var(trusted) = 0;
    $var(identity) = 0;
{_set_if(cfg.trusted, "trusted")}{_set_if(cfg.trusted_identity, "identity")}}}

{_inbound_auth_route(cfg)}
{_agent_auth_route(cfg)}{reg_routes}{out_routes}"""
    return header + _dialog_routes(cfg) + (_ROUTES.replace("@SET@", str(DISPATCHER_SET))
                                           .replace("@TRUNK_HEADER@", TRUNK_HEADER)
                                           .replace("@FRONT_REFUSED@", FRONT_REFUSED))


def _dialog_routes(cfg: FrontConfig) -> str:
    """route[SIGN_DIALOG], run on every INVITE the front record-routes, and route[DIALOG_CHECK], run on every
    in-dialog request before it is routed: the Record-Route carries ``;sig=`` the SHA-256 of "Call-ID|caller's
    tag|secret" (the secret last, so the hash cannot be extended), and an in-dialog request passes only if the first
    Route's ``sig`` matches its Call-ID with its From tag (the caller's requests) or its To tag (the callee's). No
    memory of the dialog is needed, so a restarted Kamailio still routes the BYE and re-INVITE of calls set up before
    it. With the secret unset (a front that only takes calls in), dialogs are remembered by the dialog module
    (``dlg_manage()``, ``is_known_dlg()``, in memory) instead."""
    secret = _env(cfg.node_secret_env)
    unset = f'{secret} == $null || {secret} == ""'
    return f"""
# Every dialog the front sets up is signed in its Record-Route with the cluster's secret (never written or logged).
route[SIGN_DIALOG] {{
    $var(signed) = 0;
    if ({unset}) {{
        return;
    }}
    # Reset first: a $var outlives the message in this process, and a failed assignment leaves it as it was.
    $var(dlg) = "";
    $var(dlg) = $ci + "|" + $ft + "|" + {secret};
    if ($var(dlg) == "") {{
        return;
    }}
    $var(sig) = $(var(dlg){{s.sha256}});
    add_rr_param(";sig=$var(sig)");
    $var(signed) = 1;
}}

# An in-dialog request is routed only for a dialog the front set up: its Route carries the front's signature of its
# Call-ID and the caller's tag (From tag one way, To tag the other). This needs no memory, so it holds across a restart
# of Kamailio. Without the secret, the dialog module's records (in memory, lost on a restart) decide.
route[DIALOG_CHECK] {{
    if ({unset}) {{
        if (is_method("ACK") || is_known_dlg()) {{
            return;
        }}
        xlog("L_WARN", "$rm from $si:$sp for a dialog the front does not know (call $ci) refused: without {cfg.node_secret_env} (the cluster's secret) in its environment the front knows only the dialogs set up since it started\\n");
        sl_send_reply("481", "Call/Transaction Does Not Exist");
        exit;
    }}
    # Each value is reset before it is computed (a $var outlives the message; a failed assignment keeps the old
    # value), and compared with a prefix, so neither a missing parameter nor a missing tag can match.
    $var(sig) = "";
    if (is_present_hf("Route")) {{
        $var(sig) = "sig:" + $(route_uri{{uri.param,sig}});
    }}
    $var(dlg) = "";
    $var(dlg) = $ci + "|" + $ft + "|" + {secret};
    if ($var(dlg) != "" && $var(sig) == "sig:" + $(var(dlg){{s.sha256}})) {{
        return;
    }}
    $var(dlg) = "";
    $var(dlg) = $ci + "|" + $tt + "|" + {secret};
    if ($var(dlg) != "" && $var(sig) == "sig:" + $(var(dlg){{s.sha256}})) {{
        return;
    }}
    if (is_method("ACK")) {{
        # The ACK of a negative reply belongs to its transaction (tm takes it); any other unsigned ACK is dropped.
        t_check_trans();
        exit;
    }}
    xlog("L_WARN", "$rm from $si:$sp for a dialog the front did not set up (call $ci: no valid signature in its Route) refused\\n");
    sl_send_reply("481", "Call/Transaction Does Not Exist");
    exit;
}}
"""


_ROUTES = r"""
request_route {
    route(REQINIT);
    if (is_method("CANCEL")) {
        if (t_check_trans()) {
            route(RELAY);
        }
        exit;
    }
    if (!is_method("ACK")) {
        if (t_precheck_trans()) {
            t_check_trans();
            exit;
        }
        t_check_trans();
    }
    route(WITHINDLG);

    remove_hf("Route");
    if (is_method("INVITE")) {
        record_route();
        route(SIGN_DIALOG);
    }
    if (is_method("OPTIONS") && uri == myself && $rU == $null) {
        sl_send_reply("200", "OK");
        exit;
    }
    if (is_method("REGISTER")) {
        route(REGISTRAR);
    }
    if (is_method("INVITE")) {
        if (ds_is_from_list("@SET@")) {
            route(FROM_NODE);
        }
        if (is_present_hf("@TRUNK_HEADER@")) {
            route(DIAL_OUT);
        }
        route(TO_NODE);
    }
    if (is_method("ACK")) {
        exit;
    }
    sl_send_reply("405", "Method Not Allowed");
    exit;
}

# Flood limit per source (the nodes themselves are exempt), hop limit, malformed requests.
route[REQINIT] {
    if (!ds_is_from_list("@SET@") && !pike_check_req()) {
        xlog("L_WARN", "pike: request flood from $si, dropping $rm\n");
        exit;
    }
    if (!mf_process_maxfwd_header("10")) {
        sl_send_reply("483", "Too Many Hops");
        exit;
    }
    if (!sanity_check("17895", "7")) {
        xlog("L_WARN", "malformed request from $si:$sp, dropped\n");
        exit;
    }
}

# Requests inside a dialog follow its Record-Route (loose routing).
route[WITHINDLG] {
    if (!has_totag()) {
        return;
    }
    # Only dialogs the front set up are routed: an INVITE with a made-up To tag and a Route to the front would
    # otherwise reach a trunk from the front's address without any check.
    route(DIALOG_CHECK);
    if (loose_route()) {
        # Only calls the dispatcher sent to a node count in its load (not a node's own calls out).
        if (is_method("BYE") && check_route_param("ds=1")) {
            ds_load_update();
        }
        route(RELAY);
    }
    if (is_method("ACK")) {
        if (t_check_trans()) {
            route(RELAY);
        }
        exit;
    }
    sl_send_reply("404", "Not here");
    exit;
}

# Agent phones register here; any node reaches them at sip:AGENT@this-front. An agent with a password proves it
# (from anywhere); anyone else registers from a trusted network only.
route[REGISTRAR] {
    route(AGENT_AUTH);
    if ($var(agent_authed) != 1) {
        route(TRUSTED);
        if ($var(trusted) != 1) {
            sl_send_reply("403", "Forbidden");
            exit;
        }
    }
    if (!save("location")) {
        sl_reply_error();
    }
    exit;
}

# A node calls out: through a trunk it names, a registered agent phone, or any address it dials.
route[FROM_NODE] {
    if (is_present_hf("@TRUNK_HEADER@")) {
        route(TO_TRUNK);
    }
    if (uri == myself) {
        if (!lookup("location")) {
            sl_send_reply("404", "Not Registered");
            exit;
        }
    }
    if ($var(signed) != 1) {
        dlg_manage();
    }
    route(RELAY);
}

# A call out through a trunk from another port of a node's address (`voicebot dial` on a node's machine) goes on;
# from anywhere else it is refused: only the nodes may use the trunks.
route[DIAL_OUT] {
    if (ds_is_from_list("@SET@", "3")) {
        route(TO_TRUNK);
    }
    xlog("L_WARN", "INVITE from $si:$sp asking to call out through trunk $hdr(@TRUNK_HEADER@) refused: not a cluster node\n");
    sl_send_reply("403", "@FRONT_REFUSED@");
    exit;
}

# A new call from a trunk or caller: to the least loaded live node, the next one if it fails.
route[TO_NODE] {
    route(TRUSTED);
    if ($var(trusted) != 1) {
        route(INBOUND_AUTH);
    }
    if ($var(identity) != 1) {
        remove_hf("P-Asserted-Identity");
    }
    if (!ds_select_dst("@SET@", "10")) {
        send_reply("503", "No Bot Node Available");
        exit;
    }
    add_rr_param(";ds=1");
    if ($var(signed) != 1) {
        dlg_manage();
    }
    t_on_failure("NODE_FAILED");
    t_on_reply("NODE_REPLY");
    route(RELAY);
}

route[RELAY] {
    if (!t_relay()) {
        sl_reply_error();
    }
    exit;
}

onreply_route[NODE_REPLY] {
    if (is_method("INVITE") && status =~ "2[0-9][0-9]") {
        ds_load_update();
    }
}

failure_route[NODE_FAILED] {
    if (t_is_canceled()) {
        exit;
    }
    if (t_branch_timeout() && !t_branch_replied()) {
        xlog("L_WARN", "node $du did not answer INVITE $ci: marking it down\n");
        ds_mark_dst("ip");
    }
    if (t_branch_timeout() || t_check_status("5[0-9][0-9]")) {
        if (ds_next_dst()) {
            t_on_failure("NODE_FAILED");
            t_on_reply("NODE_REPLY");
            route(RELAY);
        }
    }
    ds_load_unset();
}
"""
