"""MLflow's prompt registry against wasmflow with the official client (`mlflow.genai`).

MLflow keeps prompts in the model registry: a registered model tagged `mlflow.prompt.is_prompt`,
each version's template in its tags and a placeholder source. These tests drive what a user
calls (register, load by number/alias/latest, search, tags, aliases, model config, delete) and
check the model registry keeps prompts and models apart as MLflow's server does. The expected
messages are the ones MLflow 3.17.2's server answers for the same calls.
"""

from __future__ import annotations

import mlflow
import pytest
import requests
from mlflow.exceptions import MlflowException


@pytest.fixture
def prompt_name(unique_name):
    # Prompt names take letters, digits, `_`, `-` and `.` only.
    return unique_name("prompt").replace("-", "_")


def test_register_load_alias_and_versions(client, prompt_name):
    v1 = mlflow.genai.register_prompt(
        name=prompt_name,
        template="Hello {{name}}, answer {{ question }}",
        commit_message="first",
        tags={"team": "nlp"},
    )
    assert (v1.name, v1.version) == (prompt_name, 1)
    chat = [{"role": "system", "content": "Be {{style}}"}, {"role": "user", "content": "{{q}}"}]
    v2 = mlflow.genai.register_prompt(
        name=prompt_name,
        template=chat,
        model_config={"model_name": "gpt-4o", "temperature": 0.25},
    )
    assert v2.version == 2

    loaded = mlflow.genai.load_prompt(f"prompts:/{prompt_name}/1")
    assert loaded.template == "Hello {{name}}, answer {{ question }}"
    assert loaded.format(name="Ann", question="why") == "Hello Ann, answer why"
    assert loaded.commit_message == "first"
    assert loaded.tags.get("team") == "nlp"

    mlflow.genai.set_prompt_alias(prompt_name, alias="production", version=1)
    by_alias = mlflow.genai.load_prompt(f"prompts:/{prompt_name}@production")
    assert by_alias.version == 1 and by_alias.aliases == ["production"]

    latest = mlflow.genai.load_prompt(f"prompts:/{prompt_name}@latest")
    assert latest.version == 2
    assert latest.template == chat
    assert latest.model_config == {"model_name": "gpt-4o", "temperature": 0.25}
    assert latest.format(style="brief", q="hi") == [
        {"role": "system", "content": "Be brief"},
        {"role": "user", "content": "hi"},
    ]

    # The model configuration of a version can change after it is registered.
    mlflow.genai.set_prompt_model_config(prompt_name, 1, {"model_name": "small", "max_tokens": 5})
    assert client.get_prompt_version(prompt_name, 1).model_config == {
        "model_name": "small",
        "max_tokens": 5,
    }
    mlflow.genai.delete_prompt_model_config(prompt_name, 1)
    assert client.get_prompt_version(prompt_name, 1).model_config is None

    versions = client.search_prompt_versions(prompt_name)
    assert [v.version for v in versions] == [2, 1]

    mlflow.genai.delete_prompt_alias(prompt_name, "production")
    with pytest.raises(MlflowException, match="alias production not found"):
        client.get_prompt_version_by_alias(prompt_name, "production")


def test_prompts_and_models_are_kept_apart(api, client, prompt_name, unique_name):
    mlflow.genai.register_prompt(name=prompt_name, template="t {{x}}")
    model = unique_name("model")
    client.create_registered_model(model)

    prompts = [p.name for p in mlflow.genai.search_prompts(max_results=1000)]
    assert prompt_name in prompts and model not in prompts
    found = mlflow.genai.search_prompts(filter_string=f"name = '{prompt_name}'")
    assert [p.name for p in found] == [prompt_name]
    assert "mlflow.prompt.is_prompt" not in found[0].tags

    models = [m.name for m in client.search_registered_models(max_results=1000)]
    assert model in models and prompt_name not in models
    assert client.search_model_versions(f"name = '{prompt_name}'") == []
    # Asking for the prompt tag is how MLflow's client (and UI) lists prompts.
    tagged = client.search_registered_models("tags.`mlflow.prompt.is_prompt` = 'true'", max_results=1000)
    assert prompt_name in [m.name for m in tagged] and model not in [m.name for m in tagged]

    # The client looks the name up first; the server refuses the collision on its own too.
    with pytest.raises(MlflowException, match=f"Model '{model}' exists with the same name"):
        mlflow.genai.register_prompt(name=model, template="x")
    r = requests.post(
        api("registered-models/create"),
        json={"name": model, "tags": [{"key": "mlflow.prompt.is_prompt", "value": "true"}]},
    )
    assert r.status_code == 400 and r.json()["error_code"] == "RESOURCE_ALREADY_EXISTS"
    assert r.json()["message"] == (
        f"Tried to create a prompt with name '{model}', but the name is already taken by a "
        "registered model. MLflow does not allow creating a model and a prompt with the same "
        "name."
    )
    with pytest.raises(MlflowException) as e:
        client.create_registered_model(prompt_name)
    assert (
        f"Tried to create a registered model with name '{prompt_name}', but the name is already "
        "taken by a prompt." in str(e.value)
    )


def test_prompt_tags_and_version_tags(client, prompt_name):
    mlflow.genai.register_prompt(name=prompt_name, template="v1", tags={"a": "1"})
    mlflow.genai.set_prompt_tag(prompt_name, "owner", "ann")
    mlflow.genai.delete_prompt_tag(prompt_name, "a")
    tags = mlflow.genai.get_prompt_tags(prompt_name)
    assert tags["owner"] == "ann" and "a" not in tags

    mlflow.genai.set_prompt_version_tag(prompt_name, 1, "quality", "good")
    assert client.get_prompt_version(prompt_name, 1).tags["quality"] == "good"
    mlflow.genai.delete_prompt_version_tag(prompt_name, 1, "quality")
    assert "quality" not in client.get_prompt_version(prompt_name, 1).tags


def test_delete_versions_and_prompt(client, prompt_name):
    for text in ("one", "two"):
        mlflow.genai.register_prompt(name=prompt_name, template=text)
    client.delete_prompt_version(prompt_name, "1")
    assert [v.version for v in client.search_prompt_versions(prompt_name)] == [2]
    with pytest.raises(MlflowException, match=rf"Prompt \(name={prompt_name}, version=1\) not found"):
        client.get_prompt_version(prompt_name, 1)
    client.delete_prompt(prompt_name)
    assert client.get_prompt(prompt_name) is None
    assert prompt_name not in [p.name for p in mlflow.genai.search_prompts(max_results=1000)]


def test_prompt_sources_are_placeholders(api, prompt_name, client):
    """MLflow's server takes only its placeholder sources for prompt versions, and never a
    prompt version as a model version's source."""
    mlflow.genai.register_prompt(name=prompt_name, template="x")
    prompt_tags = [{"key": "mlflow.prompt.is_prompt", "value": "true"}, {"key": "mlflow.prompt.text", "value": "y"}]
    r = requests.post(
        api("model-versions/create"),
        json={"name": prompt_name, "source": "/etc/passwd", "tags": prompt_tags},
    )
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert r.json()["message"] == (
        "Invalid prompt source: '/etc/passwd'. Prompt sources must use an MLflow placeholder."
    )
    r = requests.post(
        api("model-versions/create"),
        json={"name": prompt_name, "source": "prompt-template", "tags": prompt_tags},
    )
    assert r.status_code == 200 and r.json()["model_version"]["version"] == "2"

    model = prompt_name + "_model"
    client.create_registered_model(model)
    r = requests.post(
        api("model-versions/create"), json={"name": model, "source": f"models:/{prompt_name}/1"}
    )
    assert r.status_code == 400
    assert r.json()["message"] == (
        f"Invalid model version source: 'models:/{prompt_name}/1'. Prompt versions cannot be "
        "used as model version sources."
    )
