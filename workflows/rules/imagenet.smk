# ImageNet 256, paper Sec. 5.2 / Fig. 3: MaskGIT teacher on VQGAN codes, Di4C students
# (di4c, di4c-d) with classifier-free guidance, FID / IS / precision / recall over a CFG
# grid (paper scale, GPU + internet + a local ImageNet), and its CPU mini twin (MaskGIT
# on small-VQ codes of MNIST-5k digits; tokenizer, teacher, judge, students by the DAG).
include: "imagenet_common.smk"


wildcard_constraints:
    scale="paper|mini",


# ------------------------------------------------------------------ mini twin (CPU)


rule prepare_imagenet_mini_data:
    """Quantised 12x12 MNIST-5k digits, split into training and held-out digits."""
    output:
        f"{IMN}/mini/data.pt",
    log:
        f"{RESULTS}/logs/imagenet/prepare_imagenet_mini_data.log",
    conda:
        ENV
    threads: 1
    params:
        py=PY,
        flags=cli_flags(IMN_M["data"]),
    shell:
        "{params.py} -m di4c.cli.cifar10_data --out {output} --log {log}"
        " --threads {threads} {params.flags}"


rule train_imagenet_mini_classifier:
    """The judge: the shared digit classifier, trained on the held-out digits."""
    input:
        f"{IMN}/mini/data.pt",
    output:
        f"{IMN}/mini/classifier.pt",
    log:
        f"{RESULTS}/logs/imagenet/train_imagenet_mini_classifier.log",
    conda:
        ENV
    threads: IMN_M.get("threads", 2)
    params:
        py=PY,
        flags=cli_flags(IMN_M["classifier"]),
    shell:
        "{params.py} -m di4c.cli.cifar10_classifier --data {input} --out {output}"
        " --log {log} --threads {threads} {params.flags}"


rule train_imagenet_mini_vq:
    """Small VQ tokenizer (VQGAN family, f2) and the code grids of all digits."""
    input:
        f"{IMN}/mini/data.pt",
    output:
        ckpt=f"{IMN}/mini/vq/last.ckpt",
        yaml=f"{IMN}/mini/vq/model.yaml",
        tokens=f"{IMN}/mini/tokens.pt",
    log:
        f"{RESULTS}/logs/imagenet/train_imagenet_mini_vq.log",
    conda:
        ENV
    threads: IMN_M.get("threads", 2)
    params:
        py=PY,
        out_dir=imn_out_dir,
        flags=cli_flags(IMN_M["vq"]),
    shell:
        "{params.py} -m di4c.cli.imagenet_mini_vq --data {input}"
        " --out-dir {params.out_dir} --tokens {output.tokens} --log {log}"
        " --threads {threads} {params.flags}"


rule train_imagenet_mini_teacher:
    """Class-conditional MaskGIT teacher (the paper network, small) on the digit codes."""
    input:
        imn_tokens("mini"),
    output:
        imn_teacher("mini"),
    log:
        f"{RESULTS}/logs/imagenet/train_imagenet_mini_teacher.log",
    conda:
        ENV
    threads: IMN_M.get("threads", 2)
    params:
        py=PY,
        flags=cli_flags(IMN_M["teacher"]),
    shell:
        "{params.py} -m di4c.cli.imagenet_teacher --tokens {input} --out {output}"
        " --log {log} --threads {threads} {params.flags}"


rule make_imagenet_mini_labels:
    """Sample labels: the held-out digits' labels, reshuffled (the val-loader order)."""
    input:
        imn_tokens("mini"),
    output:
        f"{IMN}/mini/labels.pt",
    log:
        f"{RESULTS}/logs/imagenet/make_imagenet_mini_labels.log",
    conda:
        ENV
    threads: 1
    params:
        py=PY,
        num=IMN_M["sample"]["num_samples"],
        seed=IMN_M["sample"].get("label_seed", 0),
    shell:
        "{params.py} -m di4c.cli.imagenet_labels --tokens {input} --num {params.num}"
        " --seed {params.seed} --out {output} --log {log}"


rule ref_imagenet_mini:
    """Classifier features of the held-out digits; data and VQ-reconstruction rows."""
    input:
        **imn_tokenizer("mini"),
        data=f"{IMN}/mini/data.pt",
        classifier=f"{IMN}/mini/classifier.pt",
    output:
        ref=f"{IMN}/mini/reference.pt",
        rows=f"{IMN}/mini/reference_rows.json",
    log:
        f"{RESULTS}/logs/imagenet/ref_imagenet_mini.log",
    conda:
        ENV
    threads: IMN_M.get("threads", 2)
    params:
        py=PY,
        num=IMN_M["eval"]["reference_rows"],
    shell:
        "{params.py} -m di4c.cli.imagenet_reference mini --data {input.data}"
        " --classifier {input.classifier} --vq-ckpt {input.vq_ckpt}"
        " --vq-yaml {input.vq_yaml} --out {output.ref} --rows {output.rows}"
        " --num {params.num} --log {log} --threads {threads}"


rule make_imagenet_mini_table:
    """Mini twin of Fig. 3: FID-IS over CFG, FID vs steps, speed-up at equal FID."""
    input:
        metrics=imn_metric_files("mini"),
        rows=f"{IMN}/mini/reference_rows.json",
    output:
        csv=f"{MINI}/imagenet.csv",
        png=f"{MINI}/imagenet.png",
        md=f"{MINI}/imagenet.md",
        meta=f"{MINI}/imagenet.meta.json",
    log:
        f"{RESULTS}/logs/imagenet/make_imagenet_mini_table.log",
    conda:
        ENV
    threads: 1
    params:
        py=PY,
        flags=imn_table_flags("mini"),
    shell:
        "{params.py} -m di4c.cli.imagenet_table --scale mini --metrics {input.metrics}"
        " --reference-rows {input.rows} --out {output.csv} --log {log} {params.flags}"


# ------------------------------------------------------------ paper scale (GPU)


rule fetch_imagenet_weights:
    """MaskGIT teacher + VQGAN (HF llvictorll/Maskgit-pytorch), released di4c-d (Zenodo)."""
    output:
        imn_weight_files(),
    log:
        f"{RESULTS}/logs/imagenet/fetch_imagenet_weights.log",
    retries: 2
    conda:
        ENV
    threads: 1
    params:
        py=PY,
        out_dir=imn_out_dir,
        flags=imn_fetch_flags(),
        pins=f"{PINS}/imagenet.json",
    shell:
        "{params.py} -m di4c.cli.imagenet_fetch --out-dir {params.out_dir}"
        " --pins {params.pins} --log {log} {params.flags}"


rule encode_imagenet_train:
    """VQGAN codes of ImageNet train (one seeded crop/flip per image)."""
    input:
        **imn_tokenizer("paper"),
    output:
        imn_tokens("paper"),
    log:
        f"{RESULTS}/logs/imagenet/encode_imagenet_train.log",
    conda:
        ENV
    threads: IMN_P.get("threads", 8)
    params:
        py=PY,
        root=IMN_P["imagenet_dir"],
        flags=cli_flags(IMN_P["encode"]),
    shell:
        "{params.py} -m di4c.cli.imagenet_encode --imagenet-dir {params.root}"
        " --vq-ckpt {input.vq_ckpt} --vq-yaml {input.vq_yaml} --out {output}"
        " --log {log} --threads {threads} {params.flags}"


rule make_imagenet_paper_labels:
    """Labels of the 50k val images in (seeded) shuffled val-loader order."""
    output:
        f"{IMN}/paper/labels.pt",
    log:
        f"{RESULTS}/logs/imagenet/make_imagenet_paper_labels.log",
    conda:
        ENV
    threads: 1
    params:
        py=PY,
        root=IMN_P["imagenet_dir"],
        num=IMN_P["sample"]["num_samples"],
        seed=IMN_P["sample"].get("label_seed", 0),
    shell:
        "{params.py} -m di4c.cli.imagenet_labels --imagenet-dir {params.root}"
        " --num {params.num} --seed {params.seed} --out {output} --log {log}"


rule ref_imagenet_paper:
    """Inception features of the 50k ImageNet val images (per-image min-max uint8)."""
    output:
        f"{IMN}/paper/reference.pt",
    log:
        f"{RESULTS}/logs/imagenet/ref_imagenet_paper.log",
    conda:
        ENV
    threads: IMN_P.get("threads", 8)
    params:
        py=PY,
        root=IMN_P["imagenet_dir"],
        num=IMN_P["sample"]["num_samples"],
        extractor=IMN_P["eval"]["feature_extractor"],
        workers=IMN_P["eval"].get("workers", 8),
        weights=(
            f"--weights-path {IMN_P['eval']['weights_path']}"
            if IMN_P["eval"].get("weights_path")
            else ""
        ),
    shell:
        "{params.py} -m di4c.cli.imagenet_reference paper --imagenet-dir {params.root}"
        " --num {params.num} --feature-extractor {params.extractor}"
        " --workers {params.workers} --out {output} --log {log} --threads {threads}"
        " {params.weights}"


rule make_imagenet_table:
    """Fig. 3: FID-IS curves over CFG, step grids, README teacher reference beside ours."""
    input:
        imn_metric_files("paper"),
    output:
        csv=f"{TABLES}/imagenet.csv",
        png=f"{TABLES}/imagenet.png",
        md=f"{TABLES}/imagenet.md",
        meta=f"{TABLES}/imagenet.meta.json",
    log:
        f"{RESULTS}/logs/imagenet/make_imagenet_table.log",
    conda:
        ENV
    threads: 1
    params:
        py=PY,
        flags=imn_table_flags("paper"),
    shell:
        "{params.py} -m di4c.cli.imagenet_table --scale paper --metrics {input}"
        " --out {output.csv} --log {log} {params.flags}"


# ---------------------------------------------------- both scales ({scale} wildcard)


rule distill_imagenet_student:
    """Di4C student (or the K = 1 baseline) from the teacher, SETTINGS['imagenet'] rules."""
    input:
        unpack(imn_distill_inputs),
    output:
        f"{IMN}/{{scale}}/students/{{variant}}/model.pth",
    log:
        f"{RESULTS}/logs/imagenet/distill_imagenet_{{scale}}_{{variant}}.log",
    wildcard_constraints:
        variant=IMN_VARIANT_RE,
    conda:
        ENV
    threads: 2
    params:
        py=PY,
        flags=imn_distill_flags,
    shell:
        "{params.py} -m di4c.cli.imagenet_distill --teacher {input.teacher}"
        " --tokens {input.tokens} --out {output} --log {log} --threads {threads}"
        " {params.flags}"


rule sample_imagenet_cell:
    """One sample cell: model x steps x CFG weight (per-sample seeds, val labels)."""
    input:
        unpack(imn_sample_inputs),
    output:
        f"{IMN}/{{scale}}/samples/{{model}}_steps{{steps}}_cfg{{cfg}}.pt",
    log:
        f"{RESULTS}/logs/imagenet/{{scale}}/sample_{{model}}_steps{{steps}}_cfg{{cfg}}.log",
    wildcard_constraints:
        model=IMN_MODEL_RE,
        steps=r"[0-9]+",
        cfg=r"[0-9]+(\.[0-9]+)?",
    conda:
        ENV
    threads: 1
    params:
        py=PY,
        flags=imn_sample_flags,
    shell:
        "{params.py} -m di4c.cli.imagenet_sample --model {input.model}"
        " --labels {input.labels} --steps {wildcards.steps} --cfg {wildcards.cfg}"
        " --out {output} --log {log} --threads {threads} {params.flags}"


rule eval_imagenet_cell:
    """FID / IS / precision / recall (+ split-half spread) of one sample cell."""
    input:
        unpack(imn_eval_inputs),
    output:
        f"{IMN}/{{scale}}/metrics/{{model}}_steps{{steps}}_cfg{{cfg}}.json",
    log:
        f"{RESULTS}/logs/imagenet/{{scale}}/eval_{{model}}_steps{{steps}}_cfg{{cfg}}.log",
    wildcard_constraints:
        model=IMN_MODEL_RE,
        steps=r"[0-9]+",
        cfg=r"[0-9]+(\.[0-9]+)?",
    conda:
        ENV
    threads: 1
    params:
        py=PY,
        flags=imn_eval_flags,
    shell:
        "{params.py} -m di4c.cli.imagenet_eval --samples {input.samples}"
        " --vq-ckpt {input.vq_ckpt} --vq-yaml {input.vq_yaml}"
        " --reference {input.reference} --model {wildcards.model} --out {output}"
        " --log {log} --threads {threads} {params.flags}"
