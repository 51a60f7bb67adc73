"""The runtime is a parameter of the embedding seam: the same model on numpy or torch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bot.app import App
from bot.errors import SettingsError
from bot.settings import Settings, load_settings
from store.embedding import DEFAULT_MODEL, bundled_model_path, load_embedder, numpy_runs
from store.embedding.numpy_bert import NumpyMiniLM


def test_the_numpy_runtime_runs_the_bundled_model_under_its_name() -> None:
    emb = load_embedder(DEFAULT_MODEL, runtime="numpy")
    assert isinstance(emb, NumpyMiniLM) and emb.name == DEFAULT_MODEL and emb.dim == 384
    query = emb.encode_query(["Who won the match?"])
    # A question gets its vector and its word pieces from one pass.
    np.testing.assert_allclose(
        query.vectors, emb.encode_documents(["Who won the match?"]), atol=1e-6
    )
    assert query.pieces[0][:2] == ["who", "won"]


def test_auto_picks_numpy_only_for_a_folder_it_can_run(tmp_path: Path) -> None:
    assert numpy_runs(bundled_model_path())
    assert not numpy_runs(None)  # a hub name: no folder on this disk
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    assert not numpy_runs(tmp_path)  # no safetensors weights
    with pytest.raises(ValueError, match="needs the model's folder"):
        load_embedder("someone/some-hub-model", runtime="numpy")


def test_the_query_runtime_setting_chooses_the_question_embedder(tmp_path: Path) -> None:
    app = App(Settings(_env_file=None, QABOT_DATA_DIR=tmp_path, QABOT_QUERY_RUNTIME="numpy"))
    assert isinstance(app.query_embedder, NumpyMiniLM)
    assert "embedder" not in app.__dict__  # torch was never loaded for it


def test_a_bad_runtime_is_a_one_line_error_naming_the_choices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("QABOT_QUERY_RUNTIME", "gpu")
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert str(err.value) == (
        "setting QABOT_QUERY_RUNTIME: Input should be 'auto', 'numpy' or 'torch'; "
        "fix it in .env or the environment"
    )
