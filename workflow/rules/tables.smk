# table: the per-seed metrics of the runs a table names -> csv (tidy), md and tex (paper layout).


rule table:
    input:
        table_inputs,
    output:
        csv=report(
            "results/{study}/tables/{table}.csv",
            caption="../report/caption.rst",
            category="Tables",
            subcategory="{table}",
        ),
        md="results/{study}/tables/{table}.md",
        tex="results/{study}/tables/{table}.tex",
    log:
        "logs/table/{study}/{table}.log",
    conda:
        "../../envs/l2ood.yaml"
    params:
        spec=table_spec,
    script:
        "../scripts/table.py"
