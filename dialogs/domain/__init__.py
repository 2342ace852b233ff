from dialogs.domain.loader import DomainError, bundled_domain_path, load_domain
from dialogs.domain.schema import DIALOG_ACTS, Domain, Intent, Slot, Step, Variant

__all__ = ["DIALOG_ACTS", "Domain", "DomainError", "Intent", "Slot", "Step", "Variant", "bundled_domain_path", "load_domain"]
