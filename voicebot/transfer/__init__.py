"""Warm transfer in ``voicebot serve``: the agent queue on live calls (:mod:`.service`), the records of every
hand-off and voice message (:mod:`.store`) and the utterances of a bridged call for its transcript
(:mod:`.utterances`)."""

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
]
