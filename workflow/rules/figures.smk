# figure: the outputs, probes or histories a figure names -> png and pdf.


rule figure:
    input:
        figure_inputs,
    output:
        png=report(
            figure_file("{study}", "{figure}", "png"),
            caption="../report/caption.rst",
            category="Figures",
            subcategory="{figure}",
        ),
        pdf=figure_file("{study}", "{figure}", "pdf"),
    log:
        "logs/figure/{study}/{figure}.log",
    conda:
        "../../envs/l2ood.yaml"
    params:
        **JOB_PARAMS["figure"],
    script:
        "../scripts/figure.py"
