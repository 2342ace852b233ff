"""Flow actions: importing this package registers every bundled action in :data:`ACTIONS`."""

from dialogs.actions import retail  # noqa: F401  (registers the retail actions)
from dialogs.actions.base import ACTIONS, ActionContext, ActionFn, ActionResult, action

__all__ = ["ACTIONS", "ActionContext", "ActionFn", "ActionResult", "action"]
