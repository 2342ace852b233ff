"""Warm transfer in ``voicebot serve``: the agent queue on live calls (:mod:`.service`), the records of every
hand-off and voice message (:mod:`.store`), the queue request computed from the dialog engine's hand-off
(:mod:`.request`) and the utterances of a bridged call for its transcript
(:mod:`.utterances`)."""

from voicebot.transfer.request import queue_request_from_packet, whisper_text
from voicebot.transfer.service import AgentPhoneBook, TransferService
from voicebot.transfer.store import CALL_OUTCOME, TransferRow, TransferStore, TransferTurnRow, VoicemailRow
from voicebot.transfer.utterances import Utterances

__all__ = [
    "CALL_OUTCOME",
    "AgentPhoneBook",
    "TransferRow",
    "TransferService",
    "TransferStore",
    "TransferTurnRow",
    "Utterances",
    "VoicemailRow",
    "queue_request_from_packet",
    "whisper_text",
]
