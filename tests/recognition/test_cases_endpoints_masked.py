"""Every case endpoint, read with keys that lack ``personal:read`` (the portal's, a department's, a
portal that may write), releases no personal data of the applicant whole — the timeline, the
applicant's list, the steps answer, the licence standing for a material, the revocation of an
authorisation, the public status page (the receipt's PDF: ``test_case_receipt.py``) — while the
window's key with ``personal:read`` sees them (so the check could fail). And a department's key cannot post
another department's step, whatever scopes it carries."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.cases.world import ADDRESS, NAMES, P1, PHONE, World, auth, joint_registration

SECRETS = (P1, NAMES[P1], PHONE, ADDRESS)


def test_no_case_endpoint_shows_personal_data_to_a_key_without_personal_read(city: World, api: TestClient) -> None:
    res = api.post("/v1/cases", json=joint_registration(), headers=auth(city.tokens["window"]))
    assert res.status_code == 201, res.text
    code, ref = res.json()["code"], res.json()["authorisations"][0]["ref"]
    assert P1 in res.text and ADDRESS in res.text  # the window reads them: the check below can fail
    texts: list[str] = []
    for name in ("portal", "commerce", "portal_writer"):
        key = auth(city.tokens[name])
        texts += [api.get(f"/v1/cases/{code}", headers=key).text,
                  api.get(f"/v1/holders/{P1}/cases", headers=key).text]  # fmt: skip
    accepted = {"seq": 1, "step": "accepted", "occurred_at": res.json()["received_at"], "note": "已受理"}
    step = api.post(f"/v1/cases/{code}/steps", headers=auth(city.tokens["commerce"]), json=accepted)
    assert step.status_code == 201, step.text
    licence = api.get(f"/v1/cases/{code}/materials/M04/licence", headers=auth(city.tokens["commerce"]))
    assert licence.status_code == 200, licence.text
    revoked = api.post(f"/v1/cases/{code}/authorisations/{ref}/revoke", json={"reason": "申请人撤回授权"},
                       headers=auth(city.tokens["portal_writer"]))  # fmt: skip
    assert revoked.status_code == 200, revoked.text
    texts += [step.text, licence.text, revoked.text, api.get(f"/status/{code}").text]
    everything = "\n".join(texts)
    assert code in everything
    for secret in SECRETS:
        assert secret not in everything, secret


def test_a_department_key_cannot_post_another_departments_step(city: World, api: TestClient) -> None:
    res = api.post("/v1/cases", json=joint_registration(), headers=auth(city.tokens["window"]))
    code = res.json()["code"]
    before = city.counts()
    body = {"department": "tax", "seq": 1, "step": "accepted", "occurred_at": res.json()["received_at"]}
    for name in ("commerce", "commerce_with_tax_scope", "public_security"):
        refused = api.post(f"/v1/cases/{code}/steps", headers=auth(city.tokens[name]), json=body)
        assert (refused.status_code, refused.json()["code"]) == (403, "wrong_department"), name
    assert city.counts() == before
    # tax's own key (bound to tax) or an unbound key with tax's step scope may
    ok = api.post(f"/v1/cases/{code}/steps", headers=auth(city.tokens["tax_bridge"]), json=body)
    assert ok.status_code == 201, ok.text
