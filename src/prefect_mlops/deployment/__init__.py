"""Model deployment, one module per concern: ``rollout`` (DeploymentConfig, the candidate, the
rollout started), ``infra_validation`` (a real server against the offline predictions),
``canary`` and ``shadow`` (verdicts over the serving log), ``serving_evidence`` (what the live
service shows), ``watching`` (the polling loop), ``decisions`` (promote / roll back / shadowed
and what is recorded), ``labels`` and ``live_quality`` (late ground truth, the live metric)."""
