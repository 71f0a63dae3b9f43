"""Post-purchase KPIs: CSAT, NPS, resolution time, churn and repeat purchase, and their page."""

from journeyguard.features.exports import lazy_exports

_PUBLIC = {
    "Grouping": "compute",
    "compute_kpis": "compute",
    "parse_grouping": "compute",
    "write_kpis": "page",
    "render_kpis": "page",
}
__all__ = sorted(_PUBLIC)
__getattr__ = lazy_exports(__name__, _PUBLIC)
