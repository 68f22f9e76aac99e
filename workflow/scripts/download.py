"""Fetch (or link) one raw dataset's published files, checked against their MD5s (l2ood.download)."""

from _common import setup

log = setup(snakemake)

from l2ood.download import download  # noqa: E402

kind = snakemake.params.kind
# download.existing is read from the config here, not passed as params:, so editing it reruns nothing
settings = snakemake.config["download"]
download(kind, settings["root"], existing=settings.get("existing", {}).get(kind), md5=settings.get("md5"))
