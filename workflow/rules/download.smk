# download: one rule per raw dataset (download_cifar10, ... download_tinyimagenet), local so it
# runs where the workflow starts (compute nodes of a cluster often have no internet). It puts the
# published archives under {download.root}/{kind}/, each checked against its published MD5 (a copy
# under download.existing or {download.root}/manual/ is checked and linked instead of fetched:
# l2ood.download), then lists them with their MD5s in {download.root}/{kind}/MD5SUMS, the rule's
# only output. The archives are not outputs, so Snakemake never deletes them: a forced or other
# rerun (-F, -R) checks them again and keeps them, and fetches only what is missing or fails its
# MD5. The prepare rule (prepare.smk) reads them straight from there.

from l2ood import sources  # standard library + numpy only: safe at parse time on every node

for _kind in sources.RAW_KINDS:

    rule:
        name:
            f"download_{_kind}"
        output:
            sources.verified_file(_kind, config["download"]["root"]),
        log:
            f"logs/download/{_kind}.log",
        localrule: True
        conda:
            "../../envs/l2ood.yaml"
        params:
            kind=_kind,
        script:
            "../scripts/download.py"
