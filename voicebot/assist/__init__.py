"""Agent assist: what the agent page shows an agent beside a bridged call (the customer's card)."""

from voicebot.assist.card import CustomerCard, customer_card

__all__ = ["CustomerCard", "customer_card"]
