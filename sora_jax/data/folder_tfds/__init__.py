"""The `video_folder` tfds builder: a user's folder of videos and images, prepared once."""

from sora_jax.data.folder_tfds.builder import FolderConfig, VideoFolder

__all__ = ["FolderConfig", "VideoFolder"]
