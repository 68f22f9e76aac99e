# download: one rule per raw dataset, declared local so it runs where the workflow starts (compute
# nodes of a cluster often have no internet). Outputs are the published archives under
# {download.root}/{kind}/, each checked against its published MD5; a copy under download.existing
# or {download.root}/manual/ is checked and linked instead of fetched (l2ood.sources.download).
# The prepare rule (data.smk) reads them straight from these archives.

from l2ood import sources  # standard library + numpy only: safe at parse time on every node


localrules:
    download_cifar10,
    download_cifar100,
    download_svhn,
    download_gtsrb,
    download_tinyimagenet,


rule download_cifar10:
    output:
        sources.raw_files("cifar10", config["download"]["root"]),
    log:
        "logs/download/cifar10.log",
    conda:
        "../../envs/l2ood.yaml"
    params:
        kind="cifar10",
    script:
        "../scripts/download.py"


rule download_cifar100:
    output:
        sources.raw_files("cifar100", config["download"]["root"]),
    log:
        "logs/download/cifar100.log",
    conda:
        "../../envs/l2ood.yaml"
    params:
        kind="cifar100",
    script:
        "../scripts/download.py"


rule download_svhn:
    output:
        sources.raw_files("svhn", config["download"]["root"]),
    log:
        "logs/download/svhn.log",
    conda:
        "../../envs/l2ood.yaml"
    params:
        kind="svhn",
    script:
        "../scripts/download.py"


rule download_gtsrb:
    output:
        sources.raw_files("gtsrb", config["download"]["root"]),
    log:
        "logs/download/gtsrb.log",
    conda:
        "../../envs/l2ood.yaml"
    params:
        kind="gtsrb",
    script:
        "../scripts/download.py"


rule download_tinyimagenet:
    output:
        sources.raw_files("tinyimagenet", config["download"]["root"]),
    log:
        "logs/download/tinyimagenet.log",
    conda:
        "../../envs/l2ood.yaml"
    params:
        kind="tinyimagenet",
    script:
        "../scripts/download.py"
