"""Flow actions: importing this package registers every bundled action in :data:`ACTIONS`."""

from dialogs.actions import retail  # noqa: F401  (registers the retail actions)
from dialogs.actions.base import ACTION_DATA, ACTIONS, ActionContext, ActionFn, ActionResult, action

__all__ = ["ACTION_DATA", "ACTIONS", "ActionContext", "ActionFn", "ActionResult", "action"]
