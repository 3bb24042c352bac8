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
