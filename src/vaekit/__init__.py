"""vaekit: variational autoencoders that are useful on real images.

    import vaekit
    run = vaekit.train({"data": {"data": "mnist"}, "model": {"arch": "mlp"}}, out="runs/mlp")
    run = vaekit.load("runs/mlp")
    posterior = run.model.encode(x)          # DiagonalGaussian: sample(generator), mean, kl()
    images = run.model.sample(16)
"""
from vaekit.api import Run, load, train
from vaekit.config import Config, DataConfig, ModelConfig, TrainConfig
from vaekit.data import ImageDataset, load_dataset
from vaekit.errors import VaekitError
from vaekit.models.hierarchical import HierarchicalVAE
from vaekit.models.vae import VAE, ImageVAE, VAEOutput

__version__ = "0.1.0"
__all__ = ["train", "load", "Run", "Config", "DataConfig", "ModelConfig", "TrainConfig", "VAE", "HierarchicalVAE", "ImageVAE", "VAEOutput",
           "ImageDataset", "load_dataset", "VaekitError"]
