"""The same architectures in PyTorch eager (CPU, float32), timed like jax_worker.

usage: python -m benchmarks.torch_worker NAME [--min-seconds S]
Needs `pip install torch==2.13.0` (the CPU wheel on this machine; plain `torch` may pull
a CUDA build). Layers mirror jaxgen's models layer for layer, so the ratio compares the
frameworks, not the architectures.
"""

import argparse
import os

import torch
from torch import nn
from torch.nn import functional as F

from benchmarks import specs
from benchmarks import timing


class MLPVAE(nn.Module):
  def __init__(self, image_dims=784, hidden=(512, 256), latent=2):
    super().__init__()
    self.enc = nn.ModuleList([nn.Linear(a, b) for a, b in zip((image_dims,) + hidden, hidden)])
    self.mu, self.logvar = nn.Linear(hidden[-1], latent), nn.Linear(hidden[-1], latent)
    dec = (latent,) + hidden[::-1]
    self.dec = nn.ModuleList([nn.Linear(a, b) for a, b in zip(dec, dec[1:])])
    self.out = nn.Linear(hidden[0], image_dims)

  def forward(self, x):
    h = x.flatten(1)
    for layer in self.enc:
      h = F.relu(layer(h))
    mu, logvar = self.mu(h), self.logvar(h)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    for layer in self.dec:
      z = F.relu(layer(z))
    return self.out(z).view_as(x), mu, logvar


class ConvVAE(nn.Module):
  """Model A: Conv(1->64,k4,s2,p1), Conv(64->128,k4,s2,p1); mirrored ConvTranspose decoder."""

  def __init__(self, latent=2):
    super().__init__()
    self.c1, self.c2 = nn.Conv2d(1, 64, 4, 2, 1), nn.Conv2d(64, 128, 4, 2, 1)
    self.mu, self.logvar = nn.Linear(128 * 49, latent), nn.Linear(128 * 49, latent)
    self.fc = nn.Linear(latent, 128 * 49)
    self.d1, self.d2 = nn.ConvTranspose2d(128, 64, 4, 2, 1), nn.ConvTranspose2d(64, 1, 4, 2, 1)

  def forward(self, x):
    h = F.relu(self.c2(F.relu(self.c1(x)))).flatten(1)
    mu, logvar = self.mu(h), self.logvar(h)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    return self.d2(F.relu(self.d1(self.fc(z).view(-1, 128, 7, 7)))), mu, logvar


def vae_loss(logits, x, mu, logvar):
  nll = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
  kl = 0.5 * torch.sum(torch.exp(logvar) + mu**2 - 1 - logvar)
  return (nll + kl) / x.shape[0]


MODELS = {"mlp_vae": MLPVAE, "conv_vae_a": ConvVAE}


def bench(name: str, min_seconds: float) -> dict:
  if name not in MODELS:
    raise SystemExit(f"no PyTorch counterpart for {name!r}; known: {', '.join(MODELS)}")
  torch.manual_seed(0)
  torch.set_num_threads(os.cpu_count() or 1)
  spec = specs.SPECS[name]
  model = MODELS[name]()
  optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
  h, w, c = spec.image_shape
  x = torch.rand(spec.batch_size, c, h, w)

  def run_block(n):
    for _ in range(n):
      optimizer.zero_grad(set_to_none=True)
      logits, mu, logvar = model(x)
      loss = vae_loss(logits, x, mu, logvar)
      loss.backward()
      optimizer.step()

  run_block(3)
  steps, seconds = timing.timed_loop(run_block, 5, 10, min_seconds)
  return {"task": name, "framework": "torch", "steps_per_s": steps / seconds,
          "torch_version": torch.__version__, "threads": torch.get_num_threads()}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("task")
  parser.add_argument("--min-seconds", type=float, default=5.0)
  args = parser.parse_args()
  timing.emit(bench(args.task, args.min_seconds))


if __name__ == "__main__":
  main()
