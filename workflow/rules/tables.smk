# table: the per-seed metrics of the runs a table names -> csv (tidy), md and tex (paper layout).


rule table:
    input:
        table_inputs,
    output:
        # the report shows the HTML page (the table as printed) and offers the CSV (one row per number)
        html=report(
            table_file("{study}", "{table}", "html"),
            caption="../report/table.rst",
            category="Tables",
            subcategory="{table}",
            labels={"table": "{table}", "file": "as printed"},
        ),
        csv=report(
            table_file("{study}", "{table}", "csv"),
            caption="../report/table_csv.rst",
            category="Tables",
            subcategory="{table}",
            labels={"table": "{table}", "file": "one row per number (CSV)"},
        ),
        md=table_file("{study}", "{table}", "md"),
        tex=table_file("{study}", "{table}", "tex"),
    log:
        "logs/table/{study}/{table}.log",
    conda:
        "../../envs/l2ood.yaml"
    params:
        **JOB_PARAMS["table"],
    script:
        "../scripts/table.py"


# paper_vs_reproduced: every number the paper prints beside the reproduced one.
rule paper_vs_reproduced:
    input:
        unpack(compare_inputs),
    output:
        csv=report(
            table_file("{study}", COMPARISON, "csv"),
            caption="../report/paper_vs_reproduced.rst",
            category="Tables",
            subcategory="paper_vs_reproduced",
        ),
        md=table_file("{study}", COMPARISON, "md"),
    log:
        "logs/paper_vs_reproduced/{study}.log",
    conda:
        "../../envs/l2ood.yaml"
    params:
        **JOB_PARAMS["paper_vs_reproduced"],
    script:
        "../scripts/paper_vs_reproduced.py"
