# Sourced by the scripts here: where the Dockerfile path keeps its images,
# and buildah on that store. Overlay, not vfs: the build stage's layers
# are a gigabyte each, and vfs would copy them whole at every step.
store=${DEVICELINK_CACHE:-$HOME/.cache/devicelink}/dockerfile-images
buildah=(buildah --root "$store/storage" --runroot "$store/run" --storage-driver overlay)
# buildah keeps RUN --mount=type=cache directories under TMPDIR: in the
# cache, so the build stage's cargo registry and target persist.
mkdir -p "$store/tmp"
export TMPDIR=$store/tmp
