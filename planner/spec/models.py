"""The spec language, v1: one pydantic model per section.

Field descriptions end up in the JSON Schema that editors use for
autocompletion (``medplan schema``), so they are written for spec authors.
"""

from __future__ import annotations

import datetime as dt
from enum import Enum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from planner.catalog import GpuModel, Instance
from planner.spec.classification import Classification

__all__ = [
    "ID_PATTERN",
    "Backup",
    "Classification",
    "Dataset",
    "Flow",
    "Link",
    "Metadata",
    "ModelInfo",
    "Objective",
    "Placement",
    "Policies",
    "Pool",
    "Severity",
    "Site",
    "SiteControls",
    "Spec",
    "Waiver",
    "Workload",
]

# A lowercase DNS label that also starts with a letter: valid as a Kubernetes
# name, a Helm release, a Terraform identifier and a file name.
ID_PATTERN = r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"
Id = Annotated[
    str,
    Field(
        pattern=ID_PATTERN,
        description="Identifier: lowercase letters, digits and '-', starting with a letter, at most 63 characters.",
    ),
]
GpuName = Annotated[str, Field(min_length=1, max_length=64, description="A GPU model id from the catalog, e.g. H100, H200, B200.")]
Text = Annotated[str, Field(max_length=4000)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, use_enum_values=False)


class SiteKind(str, Enum):
    on_prem = "on-prem"
    colocation = "colocation"
    cloud = "cloud"


class Provider(str, Enum):
    aws = "aws"
    azure = "azure"
    gcp = "gcp"
    oci = "oci"
    other = "other"


class Baa(str, Enum):
    executed = "executed"
    pending = "pending"
    none = "none"
    not_required = "not-required"


class Orchestrator(str, Enum):
    kubernetes = "kubernetes"
    slurm = "slurm"
    none = "none"


class LinkEncryption(str, Enum):
    none = "none"
    tls = "tls"
    mtls = "mtls"
    ipsec = "ipsec"
    macsec = "macsec"


class DataSystem(str, Enum):
    pacs = "pacs"
    ehr = "ehr"
    lis = "lis"
    wsi = "wsi"
    sequencer = "sequencer"
    other = "other"


class Deidentification(str, Enum):
    safe_harbor = "safe-harbor"
    expert_determination = "expert-determination"


class WorkloadKind(str, Enum):
    inference = "inference"
    training = "training"
    fine_tuning = "fine-tuning"
    batch = "batch"
    streaming = "streaming"


class Precision(str, Enum):
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"
    fp8 = "fp8"
    int8 = "int8"
    fp4 = "fp4"
    int4 = "int4"


class TrainingMethod(str, Enum):
    full = "full"
    lora = "lora"
    qlora = "qlora"


class Criticality(str, Enum):
    high = "high"
    medium = "medium"
    low = "low"


class TransitEncryption(str, Enum):
    none = "none"
    tls1_2 = "tls1.2"
    tls1_3 = "tls1.3"
    mtls = "mtls"
    ipsec = "ipsec"


class Purpose(str, Enum):
    treatment = "treatment"
    payment = "payment"
    operations = "operations"
    research = "research"
    public_health = "public-health"
    quality_improvement = "quality-improvement"
    other = "other"


class TransferMechanism(str, Enum):
    adequacy = "adequacy"
    scc = "scc"
    bcr = "bcr"
    derogation = "derogation"


class Frequency(str, Enum):
    continuous = "continuous"
    scheduled = "scheduled"
    one_off = "one-off"


class Isolation(str, Enum):
    none = "none"
    time_slicing = "time-slicing"
    mig = "mig"
    dedicated_nodes = "dedicated-nodes"


class Severity(str, Enum):
    critical = "critical"
    high = "high"
    medium = "medium"
    low = "low"
    info = "info"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self.value]


_SEVERITY_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


class ObjectiveKind(str, Enum):
    cost = "cost"
    gpus = "gpus"
    latency = "latency"


class Metadata(_Model):
    name: str = Field(min_length=1, max_length=200, description="Name of the organisation or deployment this spec describes.")
    owner: Text | None = Field(None, description="Who answers for this spec, e.g. a team e-mail address.")
    description: Text | None = Field(None, description="Free text shown at the top of reports.")


class Backup(_Model):
    rpo_hours: float = Field(strict=True, ge=0, description="Recovery point objective: hours of data that may be lost.")
    rto_hours: float = Field(strict=True, ge=0, description="Recovery time objective: hours until service is restored.")


class SiteControls(_Model):
    encryption_at_rest: bool = Field(False, description="Storage holding data at this site is encrypted at rest.")
    customer_managed_keys: bool = Field(False, description="Encryption keys are managed by the organisation (KMS/HSM).")
    audit_logging: bool = Field(False, description="Access to systems and data at this site is audit-logged.")
    mfa: bool = Field(False, description="Multi-factor authentication is enforced for access.")
    unique_user_ids: bool = Field(True, description="Every user has a unique identity (no shared accounts).")
    backup: Backup | None = Field(None, description="Backup objectives for data stored at this site.")


class Pool(_Model):
    id: Id
    gpu: GpuName | None = Field(None, description="GPU model of an owned pool (a catalog id). Omit when 'instance' is given.")
    instance: str | None = Field(
        None, min_length=1, max_length=64, description="Cloud instance type from the catalog; fills gpu and gpus_per_node."
    )
    nodes: int | None = Field(None, strict=True, ge=1, le=100_000, description="Nodes in an owned pool.")
    gpus_per_node: int | None = Field(None, strict=True, ge=1, le=1024, description="GPUs per node (filled from the instance catalog for cloud pools).")
    max_nodes: int | None = Field(None, strict=True, ge=1, le=100_000, description="Elastic pools: the most instances the plan may use.")
    cost_per_gpu_hour: float | None = Field(None, strict=True, ge=0, le=10_000, description="Amortised or contracted cost of one GPU hour (USD).")
    price_per_hour: float | None = Field(
        None, strict=True, ge=0, le=100_000, description="Cloud pools: price of one instance hour (USD), overriding the catalog price."
    )
    price_as_of: dt.date | None = Field(None, description="Date of price_per_hour, shown in reports.")
    isolation: Isolation = Field(Isolation.none, description="How workloads sharing this pool are isolated from each other.")

    @model_validator(mode="after")
    def _shape(self) -> Pool:
        if (self.gpu is None) == (self.instance is None):
            field = "instance" if self.instance is not None else "id"
            raise ValueError(f"@{field} a pool names exactly one of 'gpu' (owned hardware) or 'instance' (cloud instance type)")
        if self.gpu is not None:
            missing = [name for name in ("nodes", "gpus_per_node") if getattr(self, name) is None]
            if missing:
                raise ValueError(f"@gpu an owned pool (gpu: {self.gpu}) needs {' and '.join(missing)}")
        elif self.nodes is None and self.max_nodes is None:
            raise ValueError(f"@instance a cloud pool (instance: {self.instance}) needs max_nodes (elastic) or nodes (reserved)")
        return self


class Site(_Model):
    id: Id
    kind: SiteKind = Field(description="on-prem, colocation (third-party facility) or cloud.")
    provider: Provider | None = Field(None, description="Cloud provider; required for cloud sites.")
    region: str | None = Field(None, max_length=64, description="Provider region, e.g. us-east-1.")
    jurisdiction: str = Field(
        pattern=r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$",
        description="ISO 3166-1 alpha-2 country code, optionally with an ISO 3166-2 subdivision, e.g. US-MN, DE, FR-IDF.",
    )
    zone: str = Field(
        pattern=r"^[a-z][a-z0-9-]{0,31}$", description="Residency zone that residency rules compare, e.g. us, eu, uk."
    )
    baa: Baa | None = Field(
        None,
        description="HIPAA business associate agreement with the operator of this site. "
        "Defaults to not-required for on-prem sites and none otherwise.",
    )
    certifications: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list, description="e.g. hitrust, soc2-type2, iso27001.")
    controls: SiteControls = Field(default_factory=SiteControls, description="Facts about the site that policies check.")
    orchestrator: Orchestrator | None = Field(
        None, description="What runs workloads here; defaults to kubernetes for on-prem and colocation sites."
    )
    pools: list[Pool] = Field(default_factory=list, description="GPU capacity at this site.")

    @model_validator(mode="after")
    def _defaults(self) -> Site:
        if self.kind is SiteKind.cloud and self.provider is None:
            raise ValueError("@kind a cloud site needs 'provider' (aws, azure, gcp, oci or other)")
        if self.baa is None:
            object.__setattr__(self, "baa", Baa.not_required if self.kind is SiteKind.on_prem else Baa.none)
        if self.orchestrator is None:
            object.__setattr__(
                self, "orchestrator", Orchestrator.none if self.kind is SiteKind.cloud else Orchestrator.kubernetes
            )
        return self

    @property
    def third_party(self) -> bool:
        return self.kind is not SiteKind.on_prem


class Link(_Model):
    between: tuple[Id, Id] = Field(description="The two sites this link joins.")
    latency_ms: float = Field(strict=True, ge=0, le=100_000, description="One-way latency in milliseconds.")
    bandwidth_gbps: float | None = Field(None, strict=True, gt=0, le=1_000_000, description="Bandwidth in Gbit/s.")
    encryption: LinkEncryption = Field(LinkEncryption.none, description="Encryption on the link itself.")
    carrier: str | None = Field(None, max_length=200, description="Third party that operates the link; omit for your own network.")
    baa: Baa | None = Field(None, description="BAA with the carrier; defaults to not-required without a carrier and none with one.")

    @model_validator(mode="after")
    def _defaults(self) -> Link:
        if self.between[0] == self.between[1]:
            raise ValueError(f"@between a link joins two different sites, got {self.between[0]!r} twice")
        if self.baa is None:
            object.__setattr__(self, "baa", Baa.none if self.carrier else Baa.not_required)
        return self

    @property
    def key(self) -> str:
        a, b = sorted(self.between)
        return f"{a}~{b}"


class Dataset(_Model):
    id: Id
    site: Id = Field(description="Site where the data is stored.")
    system: DataSystem = Field(DataSystem.other, description="Source system: pacs, ehr, lis, wsi, sequencer or other.")
    classification: Classification = Field(description="phi, limited-data-set, deidentified or public.")
    subjects_zone: str | None = Field(
        None, pattern=r"^[a-z][a-z0-9-]{0,31}$", description="Residency zone of the data subjects (GDPR applies to eu)."
    )
    size_tb: float | None = Field(None, strict=True, ge=0, le=10_000_000, description="Size in decimal TB.")
    deidentification: Deidentification | None = Field(None, description="For de-identified data: safe-harbor or expert-determination.")
    description: Text | None = None


class ModelInfo(_Model):
    name: str = Field(min_length=1, max_length=200, description="Model name and version.")
    params_b: float | None = Field(None, strict=True, gt=0, le=100_000, description="Parameters in billions.")
    precision: Precision = Field(Precision.bf16, description="Weight precision.")
    layers: int | None = Field(None, strict=True, ge=1, le=10_000, description="Transformer layers (for KV-cache sizing).")
    kv_heads: int | None = Field(None, strict=True, ge=1, le=10_000, description="Key/value heads (for KV-cache sizing).")
    head_dim: int | None = Field(None, strict=True, ge=1, le=100_000, description="Dimension of one attention head.")
    context_tokens: int | None = Field(None, strict=True, ge=1, le=100_000_000, description="Context length served per sequence.")


class Placement(_Model):
    sites: list[Id] = Field(default_factory=list, description="Only these sites may run the workload.")
    avoid: list[Id] = Field(default_factory=list, description="These sites must not run the workload.")
    kinds: list[SiteKind] = Field(default_factory=list, description="Only sites of these kinds.")


class Workload(_Model):
    id: Id
    kind: WorkloadKind = Field(description="inference, training, fine-tuning, batch or streaming.")
    model: ModelInfo | None = Field(None, description="The model; its size drives GPU sizing when gpus is absent.")
    team: str | None = Field(None, max_length=200, description="Team that owns the workload.")
    gpus: int | None = Field(None, strict=True, ge=1, le=100_000, description="GPUs per replica; derived from the model when absent.")
    gpu_memory_gb: float | None = Field(None, strict=True, gt=0, le=100_000, description="Minimum memory per GPU (GB).")
    accelerators: list[GpuName] = Field(default_factory=list, description="Allowed GPU models; empty means any.")
    replicas: int = Field(1, strict=True, ge=1, le=100_000, description="Replicas to place.")
    inputs: list[Id] = Field(default_factory=list, description="Datasets the workload reads; each is a data flow.")
    max_latency_ms: float | None = Field(None, strict=True, ge=0, le=100_000, description="Network latency allowed to each input's site.")
    criticality: Criticality = Field(Criticality.medium, description="high: replicas spread over at least two sites.")
    placement: Placement = Field(default_factory=Placement, description="User constraints on where the workload may run.")
    concurrency: int = Field(1, strict=True, ge=1, le=1_000_000, description="Concurrent sequences per replica (KV-cache sizing).")
    training_method: TrainingMethod | None = Field(None, description="full, lora or qlora (training and fine-tuning sizing).")
    throughput: dict[GpuName, Annotated[float, Field(gt=0, strict=True)]] = Field(
        default_factory=dict, description="Measured throughput per replica on each GPU model, in your own unit."
    )
    demand: float | None = Field(None, strict=True, gt=0, description="Demand in the unit of throughput; replicas follow from it.")
    description: Text | None = None


class Flow(_Model):
    id: Id
    from_: str = Field(alias="from", min_length=1, max_length=200, description="Dataset, workload or site id (or KIND/ID).")
    to: str = Field(min_length=1, max_length=200, description="Dataset, workload or site id (or KIND/ID).")
    classification: Classification = Field(description="Classification of the data that moves.")
    encryption_in_transit: TransitEncryption = Field(TransitEncryption.none, description="none, tls1.2, tls1.3, mtls or ipsec.")
    purpose: Purpose | None = Field(None, description="Why the data moves (HIPAA minimum necessary).")
    transfer_mechanism: TransferMechanism | None = Field(None, description="GDPR Art. 45-49 basis for transfers out of the EU.")
    deidentification: Deidentification | None = Field(
        None, description="For a de-identified flow out of PHI: the HIPAA method applied (safe-harbor or expert-determination)."
    )
    frequency: Frequency = Field(Frequency.continuous, description="continuous, scheduled or one-off.")
    description: Text | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, populate_by_name=True)


class Waiver(_Model):
    rule: str = Field(pattern=r"^[A-Z][A-Z0-9]*(-[A-Z0-9]+)+$", description="Rule id, e.g. MP-HIPAA-TX-001.")
    subject: str = Field(
        pattern=r"^(site|pool|link|dataset|workload|flow)/[a-z0-9~/-]+$",
        description="KIND/ID of the waived subject, e.g. flow/legacy-hl7.",
    )
    justification: str = Field(min_length=1, max_length=4000, description="Why the risk is accepted.")
    approved_by: str = Field(min_length=1, max_length=200, description="Who accepted the risk.")
    expires: dt.date = Field(description="Date after which the waiver no longer applies (ISO 8601).")
    ticket: str | None = Field(None, max_length=200, description="Tracking reference.")


class CatalogAdditions(_Model):
    gpus: list[GpuModel] = Field(default_factory=list, description="Your own GPU models, added to the packaged catalog.")
    instances: list[Instance] = Field(default_factory=list, description="Your own cloud instance types.")


class Policies(_Model):
    include: list[Annotated[str, Field(min_length=1, max_length=1000)]] = Field(
        default_factory=lambda: ["builtin:hipaa", "builtin:gdpr", "builtin:platform"],
        description="Policy bundles: builtin:NAME or a directory of .rego and .py policies, relative to this file.",
    )
    fail_on: Severity = Field(Severity.high, description="Lowest severity that fails the run.")


class Objective(_Model):
    minimize: ObjectiveKind = Field(ObjectiveKind.cost, description="cost, gpus or latency.")
    prefer_kinds: list[SiteKind] = Field(default_factory=list, description="Tie-break order of site kinds.")
    time_limit_s: float = Field(10.0, strict=True, gt=0, le=3600, description="Solver time limit in seconds.")


class Spec(_Model):
    api_version: Literal["medplan/v1"] = Field("medplan/v1", alias="apiVersion", description="Always medplan/v1.")
    metadata: Metadata = Field(default_factory=lambda: Metadata(name="unnamed"))
    sites: list[Site] = Field(default_factory=list)
    links: list[Link] = Field(default_factory=list)
    datasets: list[Dataset] = Field(default_factory=list)
    workloads: list[Workload] = Field(default_factory=list)
    flows: list[Flow] = Field(default_factory=list)
    waivers: list[Waiver] = Field(default_factory=list)
    catalog: CatalogAdditions = Field(
        default_factory=CatalogAdditions, description="GPU models and instance types to add to the packaged catalog."
    )
    policies: Policies = Field(default_factory=Policies)
    objective: Objective = Field(default_factory=Objective)

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        allow_inf_nan=False,
        populate_by_name=True,
        title="medplan spec",
        json_schema_extra={"$id": "https://medplan.dev/schema/spec-v1.json"},
    )

    _sources: object = PrivateAttr(default=None)
