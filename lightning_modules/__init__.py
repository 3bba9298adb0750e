from lightning_modules.autoencoder import AutoencoderModule
from lightning_modules.callbacks import MetricCurves
from lightning_modules.latent_clustering import LatentClustering

__all__ = ["AutoencoderModule", "LatentClustering", "MetricCurves"]
from lightning_modules.dcgan import DCGANModule  # noqa: E402

__all__ += ["DCGANModule"]
