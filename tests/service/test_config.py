import secrets
from pathlib import Path

import pytest

from service.config import SETTINGS, ConfigError, Settings, settings_table_markdown


def test_embedded_defaults_are_valid():
    settings = Settings.from_env({})
    assert settings.locale == "US"
    assert settings.cors_origins == ("*",)
    assert settings.fhir_deadline_seconds == 2.0
    assert settings.workers >= 1


def test_values_are_normalised():
    settings = Settings.from_env({"CDS_LOCALE": " uk ", "CDS_OPEN_FHIR_SERVERS": "http://127.0.0.1:8090/fhir/ ,",
                                  "CDS_CORS_ORIGINS": "https://a.example, https://b.example"})
    assert settings.locale == "UK"
    assert settings.open_fhir_servers == ("http://127.0.0.1:8090/fhir",)
    assert settings.cors_origins == ("https://a.example", "https://b.example")


@pytest.mark.parametrize("env,value", [
    ("CDS_LOCALE", "FR"),
    ("CDS_FHIR_DEADLINE_SECONDS", "soon"),
    ("CDS_FHIR_DEADLINE_SECONDS", "0"),
    ("CDS_FHIR_DEADLINE_SECONDS", "-1"),
    ("CDS_FHIR_MAX_PAGES", "0"),
    ("CDS_FHIR_MAX_PAGES", "1.5"),
    ("CDS_WORKERS", "many"),
    ("CDS_OPEN_FHIR_SERVERS", "ehr.example.org/fhir"),
    ("CDS_CORS_ORIGINS", "javascript:alert(1)"),
    ("CDS_LOG_LEVEL", "LOUD"),
])
def test_a_bad_value_is_refused_with_a_one_line_reason_naming_the_variable(env, value):
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({env: value})
    message = str(raised.value)
    assert message.startswith(f"{env}=")
    assert "\n" not in message


def test_every_setting_maps_to_a_field():
    fields = set(Settings.__dataclass_fields__)
    assert {s.env.removeprefix("CDS_").lower() for s in SETTINGS} == fields


def test_readme_configuration_table_matches_the_code():
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert settings_table_markdown() in readme, "README table is stale: paste the output of `python -m service.config`"


PRODUCTION_REQUIRED = ("CDS_TRUSTED_CLIENTS_FILE", "CDS_PUBLIC_BASE_URL", "CDS_PATIENT_KEY_SECRET")


def test_production_reports_every_missing_setting_at_once_on_one_line():
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"CDS_MODE": "production"})
    message = str(raised.value)
    assert message.startswith("3 configuration problems: ") and "\n" not in message
    assert [problem.split(":")[0] for problem in raised.value.problems] == list(PRODUCTION_REQUIRED)


def test_bad_values_and_missing_production_settings_come_together_each_variable_once():
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"CDS_MODE": "production", "CDS_PORT": "eighty", "CDS_PUBLIC_BASE_URL": "ftp://cds.example",
                           "CDS_PATIENT_KEY_SECRET": "short"})
    problems = raised.value.problems
    assert [problem.split("=")[0].split(":")[0] for problem in problems] == [
        "CDS_PUBLIC_BASE_URL", "CDS_PORT", "CDS_PATIENT_KEY_SECRET", "CDS_TRUSTED_CLIENTS_FILE"]
    assert "short" not in str(raised.value)  # a secret is never echoed, even among other problems


def test_weak_secrets_are_reported_with_the_other_production_problems():
    """sec's refusal of published or guessable secrets is one more production problem, not a second round."""
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"CDS_MODE": "production", "CDS_PUBLIC_BASE_URL": "http://cds.hospital.example",
                           "CDS_PATIENT_KEY_SECRET": "a" * 32, "CDS_ADMIN_TOKEN": "b" * 32})
    assert [problem.split("=")[0].split(":")[0] for problem in raised.value.problems] == [
        "CDS_TRUSTED_CLIENTS_FILE", "CDS_PUBLIC_BASE_URL", "CDS_PATIENT_KEY_SECRET", "CDS_ADMIN_TOKEN"]
    assert "a" * 32 not in str(raised.value) and "b" * 32 not in str(raised.value)


@pytest.mark.parametrize("url,allowed", [
    ("https://cds.hospital.example", True), ("http://localhost:8080", True), ("http://127.0.0.1:8080", True),
    ("http://[::1]:8080", True), ("http://cds.hospital.example", False), ("http://10.0.0.5:8080", False),
])
def test_production_takes_https_or_a_loopback_http_url(tmp_path, url, allowed):
    env = {"CDS_MODE": "production", "CDS_PUBLIC_BASE_URL": url, "CDS_TRUSTED_CLIENTS_FILE": "clients.yaml",
           "CDS_PATIENT_KEY_SECRET": secrets.token_hex(32)}
    if allowed:
        assert Settings.from_env(env).public_base_url == url
    else:
        with pytest.raises(ConfigError, match="must be https when CDS_MODE=production"):
            Settings.from_env(env)


def test_the_data_directory_never_depends_on_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    here = Settings.from_env({}).data_dir
    monkeypatch.chdir(tmp_path)
    assert Settings.from_env({}).data_dir == here == str(tmp_path / "home/.local/share/fasciculation-cds")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert Settings.from_env({}).data_dir == str(tmp_path / "xdg/fasciculation-cds")
    assert Settings.from_env({"CDS_DATA_DIR": "/srv/cds"}).data_dir == "/srv/cds"
    with pytest.raises(ConfigError, match="CDS_DATA_DIR='var': must be an absolute path"):
        Settings.from_env({"CDS_DATA_DIR": "var"})
