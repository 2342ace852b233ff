"""Digest authentication against the published examples of RFC 2617 (MD5) and RFC 7616 (SHA-256)."""

from __future__ import annotations

from telephony.sip.auth import DigestVerifier, authorization, digest_response, parse_digest

SOURCE = "198.51.100.7"


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
        challenge = verifier.challenge(SOURCE)
        answer = authorization(challenge, "trunk1", "pw", "INVITE", "sip:100@bot")
        assert f"algorithm={algorithm}" in answer
        bad = authorization(challenge, "trunk1", "bad", "INVITE", "sip:100@bot")
        assert verifier.verify(bad, "INVITE", "sip:100@bot", SOURCE) is None
        # An answer is bound to the method it was computed for.
        assert verifier.verify(answer, "BYE", "sip:100@bot", SOURCE) is None
        assert verifier.verify(answer, "INVITE", "sip:100@bot", SOURCE) == "trunk1"


def test_verifier_rejects_foreign_nonce_and_garbage() -> None:
    verifier = DigestVerifier("voicebot", {"u": "p"})
    foreign = authorization('Digest realm="voicebot", nonce="123.abc", qop="auth"', "u", "p", "INVITE", "sip:x")
    assert verifier.verify(foreign, "INVITE", "sip:x", SOURCE) is None
    assert verifier.verify("Basic dTpw", "INVITE", "sip:x", SOURCE) is None
    assert verifier.verify(None, "INVITE", "sip:x", SOURCE) is None


def test_answers_are_single_use_per_nonce_count() -> None:
    """Finding 8: a nonce is good for increasing ``nc`` only, so a captured answer cannot be replayed."""
    verifier = DigestVerifier("voicebot", {"u": "p"})
    challenge = verifier.challenge(SOURCE)
    first = authorization(challenge, "u", "p", "INVITE", "sip:100@bot", nc=1)
    assert verifier.verify(first, "INVITE", "sip:100@bot", SOURCE) == "u"
    assert verifier.verify(first, "INVITE", "sip:100@bot", SOURCE) is None  # replayed
    second = authorization(challenge, "u", "p", "INVITE", "sip:100@bot", nc=2)  # a client reusing the nonce
    assert verifier.verify(second, "INVITE", "sip:100@bot", SOURCE) == "u"
    assert verifier.verify(authorization(challenge, "u", "p", "INVITE", "sip:100@bot", nc=2),
                           "INVITE", "sip:100@bot", SOURCE) is None  # nc must grow


def test_answer_is_bound_to_request_uri_and_source() -> None:
    verifier = DigestVerifier("voicebot", {"u": "p"})
    challenge = verifier.challenge(SOURCE)
    answer = authorization(challenge, "u", "p", "INVITE", "sip:100@bot")
    assert verifier.verify(answer, "INVITE", "sip:200@bot", SOURCE) is None  # digest uri != Request-URI
    assert verifier.verify(answer, "INVITE", "sip:100@bot", "192.0.2.66") is None  # nonce issued to another address
    assert verifier.verify(answer, "INVITE", "sip:100@bot", SOURCE) == "u"


def test_answer_without_qop_is_single_use() -> None:
    verifier = DigestVerifier("voicebot", {"u": "p"})
    challenge = verifier.challenge(SOURCE).replace(', qop="auth"', "")
    answer = authorization(challenge, "u", "p", "INVITE", "sip:100@bot")
    assert "qop" not in answer
    assert verifier.verify(answer, "INVITE", "sip:100@bot", SOURCE) == "u"
    assert verifier.verify(answer, "INVITE", "sip:100@bot", SOURCE) is None
