"""Object storage: one small interface, a filesystem backend and an S3/MinIO backend."""

from storage.objects.base import ObjectInfo, ObjectNotFound, ObjectStore, ObjectStoreError

__all__ = ["ObjectInfo", "ObjectNotFound", "ObjectStore", "ObjectStoreError"]
