"""Everything after training: likelihood bounds, sample quality, latents, anomalies.

  likelihood       ELBO and IWAE-k with standard errors (nats, bits/dim)
  sample_quality   FID (bootstrap interval, sample counts), unbiased KID, k-NN
                   precision/recall, classifier score
  feature_net      the jaxgen-trained feature network behind those (stored with a checksum)
  latents          the one encode-a-split loop; t-SNE, k-NN accuracy, silhouette, active
                   units, per-dimension KL, linear probe, traversals, interpolations,
                   aggregate KL
  latent_edits     noise mixing and element edits of codes, posterior sample grids
  anomaly          anomaly scores, ROC/PR AUC with bootstrap intervals, one-class protocols
  examples         evenly spaced example images of a split (fixed figure inputs)
  plots            embeddings, KL per dimension, labelled image rows
  progress         start lines and progress bars of long loops
  runs             restoring a workdir's latest checkpoint

Evaluators ask what a model can do through the protocols of `jaxgen.objectives.base`
(`Sampler`, `Reconstructor`, `Autoencoder`, `LatentVariableModel`, `ModelCollection`);
what only one study needs lives next to that study in experiments/<study>/.

`python -m jaxgen.evaluate --workdir=DIR` runs them on a workdir (see jaxgen/evaluate.py).
"""

from jaxgen.evaluation.likelihood import NoLikelihoodError
from jaxgen.evaluation.runs import NoCheckpointError
from jaxgen.evaluation.runs import RestoredRun
from jaxgen.evaluation.runs import restore_run

__all__ = ["NoCheckpointError", "NoLikelihoodError", "RestoredRun", "restore_run"]
