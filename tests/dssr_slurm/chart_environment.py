"""The environment the jarvice-helm chart gives its Slurm scheduler's container.

Every variable that ``templates/jarvice-slurm-scheduler.yaml`` (nimbix/jarvice-helm ce58fb4) sets,
with the defaults of ``values.yaml`` for a downstream cluster (see ../shared/JARVICE_HELM.md),
pointed at the test cluster. Empty values are kept: the chart sets several to ``""``.
"""

import base64

#: The server key (user, password) upstream sends; the chart passes it from a Secret.
SERVER_KEY = ("jarvice", "chart-server-key")


def chart_environment(cluster_env: dict[str, str], **values: str) -> dict[str, str]:
    """The chart's environment for the test cluster (``cluster.sh env``), ``values`` applied."""
    pem = base64.b64decode(cluster_env["JARVICE_SLURM_SSH_PKEY"]).decode()  # the chart passes raw PEM
    env = {
        # From the scheduler's entry and its SSH secret (user, group, pkey).
        "JARVICE_SLURM_CLUSTER_ADDR": cluster_env["JARVICE_SLURM_CLUSTER_ADDR"],
        "JARVICE_SLURM_CLUSTER_PORT": cluster_env["JARVICE_SLURM_CLUSTER_PORT"],
        "JARVICE_SLURM_SSH_USER": cluster_env["JARVICE_SLURM_SSH_USER"],
        "JARVICE_SLURM_SSH_PKEY": pem,
        "JARVICE_SLURM_SSH_USER_GROUP": cluster_env["JARVICE_SLURM_SSH_USER"],
        # jarvice_slurm_scheduler.env, set when not empty.
        "JARVICE_SLURM_CLIENT": "ssh_client",
        "JARVICE_KEYCLOAK_TOKEN_URL": "https://keycloak.example.com/realms/jarvice/protocol/openid-connect/token",
        "JARVICE_KEYCLOAK_CLIENT_ID": "nimbix-slurm-sched-client",
        "JARVICE_SLURM_USERNAME_CLAIM": "preferred_username",
        "JARVICE_SLURM_DATA_PARSER_VERSION": "auto",
        "JARVICE_SLURM_SCRATCH_DIR": cluster_env["JARVICE_JOB_SCRATCH_DIR"],
        "JARVICE_SCHED_SERVER_KEY": ":".join(SERVER_KEY),
        # jarvice_slurm_scheduler.env, always set.
        "JARVICE_SLURM_SCHED_LOGLEVEL": "30",
        "JARVICE_SLURM_OVERLAY_SIZE": "640",
        "JARVICE_SLURM_HTTPS_PROXY": "",
        "JARVICE_SLURM_HTTP_PROXY": "",
        "JARVICE_SLURM_NO_PROXY": "",
        "JARVICE_SINGULARITY_VERBOSE": "false",
        "JARVICE_SINGULARITY_TMPDIR": "",
        # The jarvice section.
        "JARVICE_SYSTEM_K8S": "true",
        "JARVICE_EXPERIMENTAL": "false",
        "JARVICE_CLUSTER_TYPE": "downstream",
        "JARVICE_JOBS_NAMESPACE": "jarvice-system-jobs",
        "JARVICE_SYSTEM_NAMESPACE": "jarvice-system",
        "JARVICE_SYSTEM_REGISTRY": "us-docker.pkg.dev",
        "JARVICE_SYSTEM_REPO_BASE": "jarvice-system/images",
        "JARVICE_SYSTEM_OMIT_REPO_BASE": "false",
        "JARVICE_IMAGES_TAG": "jarvice-master",
        "JARVICE_LOCAL_REGISTRY": "",
        "JARVICE_LOCAL_REPO_BASE": "jarvice",
        "JARVICE_JOBS_DOMAIN": "slurm.example.com/job$",
        "JARVICE_JOBS_INGRESS_CLASS": "traefik",
        "JARVICE_JOBS_INGRESS_ANNOTATIONS": "",
        "JARVICE_JOBS_INGRESS_CERT_ISSUER": "letsencrypt-prod",
        "REQUESTS_CA_BUNDLE": "/etc/ssl/certs/ca-certificates.crt",
    }
    return {**env, **values}
