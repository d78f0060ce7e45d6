"""The license of a model in plain words: category, commercial use, duties, gating and access."""

from __future__ import annotations

from html import escape

from PySide6.QtWidgets import QWidget

from app.hub.links import safe_link
from app.hub.models import AccessStatus, Gating, ModelDetails
from app.licenses import CommercialUse, LicenseInfo, license_info
from ui.discover.card_view import CardView
from ui.discover.results_model import CATEGORY_COLOURS
from ui.widgets import clip

_COMMERCIAL_TEXT = {
    CommercialUse.YES: "Commercial use: allowed",
    CommercialUse.NO: "Commercial use: not allowed",
    CommercialUse.CONDITIONAL: "Commercial use: allowed, with conditions",
    CommercialUse.UNKNOWN: "Commercial use: unknown — read the license",
}
_ACCESS_TEXT = {
    AccessStatus.GRANTED: "Your token has access: files can be downloaded.",
    AccessStatus.NO_TOKEN: "No token is set: add one in Settings after accepting the terms.",
    AccessStatus.DENIED: "Your token does not have access yet (terms not accepted, or the "
    "request is still under review).",
    AccessStatus.UNKNOWN: "Access could not be checked right now.",
}


def license_html(
    details: ModelDetails, info: LicenseInfo, access: AccessStatus | None, license_text: str | None
) -> str:
    """The panel's content as HTML; every value from the hub is escaped."""
    colour = CATEGORY_COLOURS[info.category]
    parts = [
        f"<h2>{escape(clip(info.name))}</h2>",  # a hub's license name can be any length
        f'<p><span style="background:{colour}; color:white">&nbsp;{escape(info.category.value)}'
        f"&nbsp;</span>&nbsp; <b>{escape(_COMMERCIAL_TEXT[info.commercial_use])}</b></p>",
    ]
    if info.commercial_condition:
        parts.append(f"<p><i>Condition:</i> {escape(info.commercial_condition)}</p>")
    parts.append(f"<p>{escape(info.summary)}</p>")
    if info.obligations:
        items = "".join(f"<li>{escape(duty)}</li>" for duty in info.obligations)
        parts.append(f"<p><b>What you must do</b></p><ul>{items}</ul>")
    if info.use_restrictions:
        items = "".join(f"<li>{escape(use)}</li>" for use in info.use_restrictions)
        parts.append(f"<p><b>Not to be used for</b></p><ul>{items}</ul>")
    # A card's license_link is often relative ("LICENSE"): it points into the repository.
    url = safe_link(info.url, f"{details.url}/blob/{details.sha or 'main'}/") if info.url else None
    if url:
        parts.append(f'<p>Full text: <a href="{escape(url)}">{escape(url)}</a></p>')
    if details.gating is not Gating.OPEN:
        how = "reviewed by the authors" if details.gating is Gating.MANUAL else "granted at once"
        parts.append(
            "<h3>Gated model</h3>"
            f"<p>The files can be downloaded only after you accept the terms on the model's "
            f'hub page: <a href="{escape(details.url)}">{escape(details.url)}</a>. '
            f"Requests are {how}.</p>"
        )
        if access is not None:
            parts.append(f"<p><b>{escape(_ACCESS_TEXT[access])}</b></p>")
    if license_text is not None:
        name = details.license_file.path if details.license_file else "LICENSE"
        parts.append(f"<h3>{escape(name)} in the repository</h3><pre>{escape(license_text)}</pre>")
    return "".join(parts)


class LicensePanel(CardView):
    """Read-only rich text; links open in the system browser like the card's."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._details: ModelDetails | None = None
        self._access: AccessStatus | None = None
        self._license_text: str | None = None

    @property
    def info(self) -> LicenseInfo | None:
        if self._details is None:
            return None
        return license_info(
            self._details.license_id,
            license_name=self._details.license_name,
            license_link=self._details.license_link,
        )

    def show_details(self, details: ModelDetails) -> None:
        self._details, self._access, self._license_text = details, None, None
        self._render()

    def show_access(self, access: AccessStatus) -> None:
        self._access = access
        self._render()

    def show_license_text(self, text: str) -> None:
        self._license_text = text
        self._render()

    def _render(self) -> None:
        info = self.info
        if self._details is None or info is None:
            self.clear()
            return
        self.setHtml(license_html(self._details, info, self._access, self._license_text))
