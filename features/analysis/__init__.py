"""Path analysis: transitions, variants, funnels, bottlenecks, the critical path, and the report."""

from journeyguard.features.exports import lazy_exports

_PUBLIC = {
    "Analysis": "assemble",
    "analyze": "assemble",
    "write_analysis": "assemble",
    "critical_path_analysis": "critical",
    "render_report": "report",
    "write_report": "report",
}
__all__ = sorted(_PUBLIC)
__getattr__ = lazy_exports(__name__, _PUBLIC)
