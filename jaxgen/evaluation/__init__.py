"""Offline evaluation of trained runs: likelihood bounds, sample quality, latents, anomalies.

  likelihood       ELBO and IWAE-k with standard errors (nats, bits/dim)
  sample_quality   FID, unbiased KID, k-NN precision/recall, classifier score
  feature_net      the jaxgen-trained feature network behind those (stored with a checksum)
  latents          t-SNE, k-NN accuracy, silhouette, active units, per-dimension KL, traversals
  anomaly          anomaly scores, ROC/PR AUC with bootstrap intervals, one-class protocols
  runs             restoring a workdir's latest checkpoint

`python -m jaxgen.evaluate --workdir=DIR` runs them on a workdir (see jaxgen/evaluate.py).
"""

from jaxgen.evaluation.likelihood import NoLikelihoodError
from jaxgen.evaluation.runs import NoCheckpointError
from jaxgen.evaluation.runs import RestoredRun
from jaxgen.evaluation.runs import restore_run

__all__ = ["NoCheckpointError", "NoLikelihoodError", "RestoredRun", "restore_run"]
