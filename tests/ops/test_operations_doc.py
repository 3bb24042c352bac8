"""docs/operations.md stays true to the code: settings, metrics and the README's pointers."""
from prometheus_client import Counter, Histogram

from service import metrics
from service.config import settings_table_markdown
from tests.ops.support import ROOT

DOC = (ROOT / "docs" / "operations.md").read_text()


def test_the_configuration_reference_is_the_generated_table():
    assert settings_table_markdown() in DOC, "regenerate the table in docs/operations.md from service.config"


def test_every_metric_is_documented_with_its_labels():
    defined = [value for value in vars(metrics).values() if isinstance(value, (Counter, Histogram))]
    assert len(defined) >= 9
    for metric in defined:
        name = metric._name  # with its namespace
        if isinstance(metric, Counter):
            name += "_total"
        row = next((line for line in DOC.splitlines() if line.startswith(f"| `{name}` |")), None)
        assert row, f"{name} is not in the metrics table of docs/operations.md"
        for label in metric._labelnames:
            assert f"`{label}`" in row, (name, label)


def test_the_readme_points_operators_at_the_container_and_this_guide():
    readme = (ROOT / "README.md").read_text()
    assert "## Run in a container" in readme
    assert "docs/operations.md" in readme


def test_a_buffering_proxy_is_required_and_the_shipped_one_buffers():
    """Issue 15, item 7: slow-body connections froze an instance; the guide says why a buffering proxy
    is required, and the shipped nginx buffers (c2304de's guide said neither)."""
    import re
    assert "The proxy must buffer whole request bodies before it forwards them" in DOC
    conf = (ROOT / "deploy" / "compose" / "nginx.conf").read_text()
    assert re.search(r"^\s*proxy_request_buffering on;", conf, re.M)
    assert re.search(r"^\s*client_body_timeout \d+s;", conf, re.M)
    assert "networkpolicy.yaml" in DOC
