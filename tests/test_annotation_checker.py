"""*Check against critic* with a real (tiny, memorized) critic: which FSBS searches catch the bug."""

from __future__ import annotations

from conftest import BUG_LINE, BUG_QUOTE, BUGGY_CODE

from critic.annotation_app.checker import check_tampering
from critic.annotation_app.server import lazy_critic
from critic.inference.fsbs import FSBSSettings

# Small searches keep the test fast; the memorized critic writes its critique at this temperature.
SETTINGS = FSBSSettings(samples=2, rounds=1, keep=1, temperature=0.5)


def test_check_reports_caught_and_adversarial(known_critic):
    critic = lazy_critic(*known_critic)()
    assert critic.name == "policy"  # the critiques' origin: model:<policy dir>
    described = "Off-by-one: the loop stops before the last element, so the total misses it."
    result = check_tampering(critic, BUGGY_CODE, [BUG_LINE], described, SETTINGS)
    assert len(result.critiques) == 3 and all(BUG_QUOTE in c for c in result.critiques), result.critiques
    assert result.caught == [True, True, True] and not result.adversarial
    assert result.settings["seeds"] == [0, 1, 2] and result.settings["model"] == "policy"
    assert result.settings["samples"] == 2 and result.code == BUGGY_CODE

    # The same critiques miss a bug inserted elsewhere: that tampering is adversarial.
    elsewhere = check_tampering(critic, BUGGY_CODE, [5], "Divides by zero when xs is empty.", SETTINGS)
    assert elsewhere.caught == [False, False, False] and elsewhere.adversarial


def test_tamper_submit_over_http_runs_the_critic(known_critic, annotation_engine, tmp_path):
    """Through the full app (API + UI): the server checks the submitted code itself and stores its
    three critiques, named after the model, with the gold critique."""
    from annotation_helpers import DESCRIPTION, PASSWORD, make_team
    from fastapi.testclient import TestClient
    from sqlmodel import Session, select

    from critic.annotation_app.db import Critique, Tampering
    from critic.annotation_app.server import create_app

    engine = annotation_engine
    make_team(engine, tmp_path / "src", samples=1)
    with TestClient(create_app(engine, lazy_critic(*known_critic))) as client:
        assert client.get("/api/health").json() == {"ok": True}
        assert client.get("/").status_code == 200  # the Gradio UI is mounted at /
        token = client.post("/api/login", json={"name": "alice", "password": PASSWORD}).json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        sample = client.get("/api/tamper/next", headers=headers).json()["sample"]
        code = sample["code"].replace("range(len(xs))", "range(len(xs) - 1)")
        body = {"sample_id": sample["sample_id"], "code": code, "bug_lines": [3], "description": DESCRIPTION}
        response = client.post("/api/tamper/submit", json=body, headers=headers)
    assert response.status_code == 200, response.text
    result = response.json()
    with Session(engine) as session:
        tampering = session.get(Tampering, result["tampering_id"])
        critiques = session.exec(select(Critique).where(Critique.tampering_id == tampering.id)).all()
    assert tampering.caught == sum(result["caught"]) and tampering.adversarial == (not all(result["caught"]))
    models = [c for c in critiques if c.origin != "gold"]
    assert len(critiques) == 4 and {c.origin for c in models} == {"model:policy"}
    assert all(c.fsbs_settings["seeds"] == [0, 1, 2] for c in models)
