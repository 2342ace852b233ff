"""dialogs: the bot's brain, from text alone: NLU, dialog manager, domain YAML, database actions.

A plain library: it imports no pipecat, audio or telephony code.
"""
