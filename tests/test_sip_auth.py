"""Digest authentication against the published examples of RFC 2617 (MD5) and RFC 7616 (SHA-256)."""

from __future__ import annotations

from telephony.sip.auth import DigestVerifier, authorization, digest_response, parse_digest


def test_rfc2617_md5_example() -> None:
    assert digest_response("MD5", "Mufasa", "testrealm@host.com", "Circle Of Life", "GET", "/dir/index.html",
                           "dcd98b7102dd2f0e8b11d0f600bfb0c093", "auth", "00000001",
                           "0a4f113b") == "6629fae49393a05397450978507c4ef1"


def test_rfc7616_sha256_and_md5_examples() -> None:
    args = ("Mufasa", "http-auth@example.org", "Circle of Life", "GET", "/dir/index.html",
            "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", "auth", "00000001",
            "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ")
    assert digest_response("SHA-256", *args) == "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    assert digest_response("MD5", *args) == "8ca523f5e9506fed4657c9700eebdbec"


def test_parse_challenge() -> None:
    p = parse_digest('Digest realm="sip.example.com", nonce="abc,def", algorithm=SHA-256, qop="auth,auth-int", '
                     'opaque="xyz"')
    assert p == {"realm": "sip.example.com", "nonce": "abc,def", "algorithm": "SHA-256", "qop": "auth,auth-int",
                 "opaque": "xyz"}


def test_client_answer_is_accepted_by_verifier_for_both_algorithms() -> None:
    for algorithm in ("MD5", "SHA-256"):
        verifier = DigestVerifier("voicebot", {"trunk1": "pw"}, algorithm=algorithm)
        challenge = verifier.challenge()
        answer = authorization(challenge, "trunk1", "pw", "INVITE", "sip:100@bot")
        assert f"algorithm={algorithm}" in answer
        assert verifier.verify(answer, "INVITE") == "trunk1"
        assert verifier.verify(authorization(challenge, "trunk1", "bad", "INVITE", "sip:100@bot"), "INVITE") is None
        # An answer is bound to the method it was computed for.
        assert verifier.verify(answer, "BYE") is None


def test_verifier_rejects_foreign_nonce_and_garbage() -> None:
    verifier = DigestVerifier("voicebot", {"u": "p"})
    foreign = authorization('Digest realm="voicebot", nonce="123.abc", qop="auth"', "u", "p", "INVITE", "sip:x")
    assert verifier.verify(foreign, "INVITE") is None
    assert verifier.verify("Basic dTpw", "INVITE") is None
    assert verifier.verify(None, "INVITE") is None
