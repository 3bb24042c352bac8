"""How a review is to be written: locale and the patient's reassurance history."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Callable


@dataclass(frozen=True)
class ReviewOptions:
    locale: str = "US"  # "US" | "UK": regulatory wording (quinine) and test names (BMP vs U&E)
    reassurance_given_on: date | None = None  # when recent, reassurance becomes a short reminder
    # Or a function giving that date, called only if a reassurance card is being written (the hook
    # reads the patient's card history from the service's store: most reviews never need it).
    reassurance_lookup: Callable[[], date | None] | None = field(default=None, compare=False, repr=False)

    def reassurance_date(self) -> date | None:
        if self.reassurance_given_on is None and self.reassurance_lookup is not None:
            return self.reassurance_lookup()
        return self.reassurance_given_on
