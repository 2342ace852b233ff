"""SIP transactions (RFC 3261 §17) with shortened timers: retransmission, absorption, ACK, timeouts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from telephony.sip.message import SipRequest, SipResponse, make_response, parse_message
from telephony.sip.transaction import ClientTransaction, ServerTransaction, Timers

T = Timers(t1=0.01, t2=0.04, t4=0.05)

INVITE = (
    b"INVITE sip:bot@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bKabc\r\n"
    b"From: <sip:a@192.0.2.9>;tag=f1\r\nTo: <sip:bot@192.0.2.1>\r\nCall-ID: tx1\r\nCSeq: 7 INVITE\r\n"
    b"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
)
OPTIONS = INVITE.replace(b"INVITE sip", b"OPTIONS sip").replace(b"7 INVITE", b"7 OPTIONS")
ACK = INVITE.replace(b"INVITE sip", b"ACK sip").replace(b"7 INVITE", b"7 ACK")


def req(data: bytes) -> SipRequest:
    msg = parse_message(data)
    assert isinstance(msg, SipRequest)
    return msg


async def until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    async def poll() -> None:
        while not cond():
            await asyncio.sleep(0.002)

    await asyncio.wait_for(poll(), timeout)


def statuses(sent: list[bytes]) -> list[int]:
    return [int(s.split(b" ")[1]) for s in sent if s.startswith(b"SIP/2.0")]


def test_server_invite_error_is_retransmitted_until_ack() -> None:
    async def main() -> tuple[list[int], list[int], str]:
        sent: list[bytes] = []
        done: list[ServerTransaction] = []
        tx = ServerTransaction(req(INVITE), sent.append, False, T, done.append)
        tx.respond(make_response(tx.request, 100))
        tx.receive(req(INVITE))  # the caller retransmits: it gets the last response again
        tx.respond(make_response(tx.request, 486, to_tag="t"))
        await until(lambda: len(sent) >= 6)  # 100, 100, 486 and its retransmissions
        tx.receive(req(ACK))
        before_ack = statuses(sent)
        await until(lambda: bool(done))  # timer I
        return before_ack, statuses(sent), tx.state

    before, after, state = asyncio.run(main())
    assert before[:3] == [100, 100, 486] and set(before[3:]) == {486}
    assert after == before  # nothing more after the ACK
    assert state == "terminated"


def test_server_invite_2xx_is_retransmitted_until_dialog_ack() -> None:
    async def main() -> tuple[int, int]:
        sent: list[bytes] = []
        tx = ServerTransaction(req(INVITE), sent.append, False, T, lambda t: None)
        tx.respond(make_response(tx.request, 200, to_tag="t"))
        await until(lambda: len(sent) >= 4)
        tx.ack_received()
        n = len(sent)
        tx.receive(req(INVITE))  # a late INVITE retransmission is still absorbed, not a new call
        await asyncio.sleep(0.1)  # several T1s: no timer may fire any more
        return n, len(sent)

    n, later = asyncio.run(main())
    assert later == n  # absorbed silently after confirmation, and no timer retransmissions


def test_no_ack_reports_to_the_dialog() -> None:
    async def main() -> bool:
        flag = asyncio.Event()
        tx = ServerTransaction(req(INVITE), lambda b: None, False, T, lambda t: None)
        tx.on_no_ack = flag.set
        tx.respond(make_response(tx.request, 200, to_tag="t"))
        await asyncio.wait_for(flag.wait(), 5)  # timer L: 64*T1
        return tx.state == "terminated"

    assert asyncio.run(main())


def test_server_non_invite_answers_retransmissions() -> None:
    async def main() -> list[int]:
        sent: list[bytes] = []
        done: list[ServerTransaction] = []
        tx = ServerTransaction(req(OPTIONS), sent.append, False, T, done.append)
        tx.respond(make_response(tx.request, 200))
        tx.receive(req(OPTIONS))
        tx.receive(req(OPTIONS))
        await until(lambda: bool(done))  # timer J
        return statuses(sent)

    assert asyncio.run(main()) == [200, 200, 200]


def test_client_non_invite_backs_off_to_t2_and_times_out() -> None:
    # Timers five times the module's, so a loaded machine's scheduling jitter (tens of ms) cannot reorder the gaps.
    slow = Timers(t1=0.05, t2=0.4, t4=0.5)

    async def main() -> tuple[SipResponse, list[float]]:
        times: list[float] = []
        loop = asyncio.get_running_loop()
        tx = ClientTransaction(req(OPTIONS), lambda b: times.append(loop.time()), False, slow, lambda t: None)
        tx.start()
        resp = await asyncio.wait_for(tx.final, 10)
        return resp, [b - a for a, b in zip(times, times[1:], strict=False)]

    resp, gaps = asyncio.run(main())
    assert resp.status == 408
    assert 7 <= len(gaps) + 1 <= 14, gaps  # 64*T1 of retransmissions: 0.05, 0.1, 0.2, then T2 (0.4) each
    assert sum(gaps[:2]) < slow.t2 <= sorted(gaps)[len(gaps) // 2] + 0.05, gaps  # doubles from T1, then sits at T2
    assert sorted(gaps)[-2] < slow.t2 * 2, gaps  # capped at T2 (one late wake-up allowed)


def test_client_invite_provisional_stops_retransmission_and_error_is_acked() -> None:
    async def main() -> tuple[list[bytes], SipResponse, int]:
        sent: list[bytes] = []
        tx = ClientTransaction(req(INVITE), sent.append, False, T, lambda t: None)
        tx.start()
        await until(lambda: len(sent) >= 3)
        ringing = make_response(tx.request, 180, to_tag="callee")
        tx.receive(ringing)
        n = len(sent)
        await asyncio.sleep(0.1)  # would have been several retransmissions of the INVITE
        after_180 = len(sent)
        busy = make_response(tx.request, 486, to_tag="callee")
        tx.receive(busy)
        final = await tx.final
        tx.receive(busy)  # the 486 retransmitted: our ACK was lost, send it again
        return sent, final, after_180 - n

    sent, final, extra = asyncio.run(main())
    assert extra == 0 and final.status == 486
    acks = [parse_message(s) for s in sent if s.startswith(b"ACK")]
    assert len(acks) == 2
    ack = acks[0]
    assert isinstance(ack, SipRequest)
    assert ack.top_via.branch == "z9hG4bKabc" and ack.to_addr.tag == "callee" and ack.cseq.number == 7


def test_reliable_transport_does_not_retransmit() -> None:
    async def main() -> int:
        sent: list[bytes] = []
        tx = ClientTransaction(req(OPTIONS), sent.append, True, T, lambda t: None)
        tx.start()
        resp = await asyncio.wait_for(tx.final, 5)
        assert resp.status == 408
        return len(sent)

    assert asyncio.run(main()) == 1
