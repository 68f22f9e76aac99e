# download: one rule per raw dataset (download_cifar10, ... download_tinyimagenet), local so it
# runs where the workflow starts (compute nodes of a cluster often have no internet). Outputs are
# the published archives under {download.root}/{kind}/, each checked against its published MD5;
# a copy under download.existing or {download.root}/manual/ is checked and linked instead of
# fetched (l2ood.download). The prepare rule (prepare.smk) reads them straight from there.

from l2ood import sources  # standard library + numpy only: safe at parse time on every node

for _kind in sources.RAW_KINDS:

    rule:
        name:
            f"download_{_kind}"
        output:
            sources.raw_files(_kind, config["download"]["root"]),
        log:
            f"logs/download/{_kind}.log",
        localrule: True
        conda:
            "../../envs/l2ood.yaml"
        params:
            kind=_kind,
        script:
            "../scripts/download.py"
