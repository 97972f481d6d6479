{{/*
Helpers shared by every manifest of the chart. Each workload entry of
.Values.workloads is one controller; the helpers take a context
(dict "root" $ "name" <entry name> "w" <entry>).

Every string that comes from values is written with toJson, so text from
the spec (descriptions, team names) reaches the manifests as a quoted
literal and is never read as YAML or as a template.
*/}}

{{- define "medplan.fullname" -}}
{{- printf "%s-%s" .root.Release.Name .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "medplan.serviceAccountName" -}}
{{- printf "%s-workloads" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every object of the release. */}}
{{- define "medplan.chartLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" | toJson }}
app.kubernetes.io/instance: {{ .Release.Name | toJson }}
app.kubernetes.io/managed-by: medplan
app.kubernetes.io/part-of: {{ .Chart.Name | toJson }}
app.kubernetes.io/version: {{ .Chart.AppVersion | toJson }}
medplan.dev/site: {{ .Values.site.id | toJson }}
{{- end -}}

{{/* The labels a controller selects its pods by (immutable once installed). */}}
{{- define "medplan.selectorLabels" -}}
app.kubernetes.io/instance: {{ .root.Release.Name | toJson }}
app.kubernetes.io/name: {{ .w.workload | toJson }}
medplan.dev/pool: {{ .w.pool | toJson }}
{{- end -}}

{{/* Labels of a workload's objects and pods: what it is and what data it reads. */}}
{{- define "medplan.workloadLabels" -}}
{{ include "medplan.chartLabels" .root }}
app.kubernetes.io/name: {{ .w.workload | toJson }}
app.kubernetes.io/component: {{ .w.kind | toJson }}
medplan.dev/workload: {{ .w.workload | toJson }}
medplan.dev/pool: {{ .w.pool | toJson }}
medplan.dev/classification: {{ .w.classification | toJson }}
medplan.dev/phi: {{ ternary "true" "false" .w.phi | toJson }}
medplan.dev/criticality: {{ .w.criticality | toJson }}
{{- with .w.teamLabel }}
medplan.dev/team: {{ . | toJson }}
{{- end }}
{{- end -}}

{{/* Free text from the spec, as annotations only. */}}
{{- define "medplan.workloadAnnotations" -}}
medplan.dev/gpu: {{ .w.gpu | toJson }}
medplan.dev/gpus-per-replica: {{ .w.gpus | toString | toJson }}
{{- with .w.team }}
medplan.dev/team: {{ . | toJson }}
{{- end }}
{{- with .w.description }}
medplan.dev/description: {{ . | toJson }}
{{- end }}
{{- with .root.Values.spec.name }}
medplan.dev/spec-name: {{ . | toJson }}
{{- end }}
{{- with .root.Values.spec.owner }}
medplan.dev/spec-owner: {{ . | toJson }}
{{- end }}
{{- end -}}

{{/* Image reference: repository@digest when a digest is set, else repository:tag. */}}
{{- define "medplan.image" -}}
{{- $image := index .root.Values.images .w.workload -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $image.repository $image.tag -}}
{{- end -}}
{{- end -}}

{{/* The pod of a workload: GPUs, node selection and a restricted security context. */}}
{{- define "medplan.podSpec" -}}
{{- $w := .w -}}
{{- $sc := .root.Values.securityContext -}}
{{- $image := index .root.Values.images $w.workload -}}
serviceAccountName: {{ include "medplan.serviceAccountName" .root | toJson }}
automountServiceAccountToken: false
enableServiceLinks: false
securityContext:
  runAsNonRoot: true
  runAsUser: {{ int64 $sc.runAsUser }}
  runAsGroup: {{ int64 $sc.runAsGroup }}
  fsGroup: {{ int64 $sc.fsGroup }}
  seccompProfile:
    type: RuntimeDefault
nodeSelector:
  nvidia.com/gpu.product: {{ $w.gpuProduct | toJson }}
tolerations:
  - key: nvidia.com/gpu
    operator: Exists
    effect: NoSchedule
containers:
  - name: {{ $w.workload | toJson }}
    image: {{ include "medplan.image" . | toJson }}
    imagePullPolicy: {{ $image.pullPolicy | toJson }}
    {{- if eq $w.controller "Deployment" }}
    ports:
      - name: http
        containerPort: {{ int64 $w.port }}
        protocol: TCP
    {{- end }}
    env:
      - name: MEDPLAN_WORKLOAD
        value: {{ $w.workload | toJson }}
      - name: MEDPLAN_GPUS_PER_REPLICA
        value: {{ $w.gpus | toString | toJson }}
      - name: MEDPLAN_PODS_PER_REPLICA
        value: {{ $w.podsPerReplica | toString | toJson }}
    resources:
      requests:
        cpu: {{ $w.resources.cpu | toJson }}
        memory: {{ $w.resources.memory | toJson }}
        nvidia.com/gpu: {{ int64 $w.gpusPerPod }}
      limits:
        memory: {{ $w.resources.memory | toJson }}
        nvidia.com/gpu: {{ int64 $w.gpusPerPod }}
    securityContext:
      allowPrivilegeEscalation: false
      privileged: false
      readOnlyRootFilesystem: true
      runAsNonRoot: true
      capabilities:
        drop:
          - ALL
      seccompProfile:
        type: RuntimeDefault
    volumeMounts:
      - name: tmp
        mountPath: /tmp
      - name: dshm
        mountPath: /dev/shm
volumes:
  - name: tmp
    emptyDir:
      sizeLimit: {{ $w.resources.tmp | toJson }}
  - name: dshm
    emptyDir:
      medium: Memory
      sizeLimit: {{ $w.resources.shm | toJson }}
{{- end -}}

{{/* Peers of one endpoint (a dataset's system or a remote site): CIDRs and/or a namespace. */}}
{{- define "medplan.peers" -}}
{{- range .cidrs }}
- ipBlock:
    cidr: {{ . | toJson }}
{{- end }}
{{- if .namespace }}
- namespaceSelector:
    matchLabels:
      kubernetes.io/metadata.name: {{ .namespace | toJson }}
  {{- with .podLabels }}
  podSelector:
    matchLabels:
      {{- range $k, $v := . }}
      {{ $k | toJson }}: {{ $v | toJson }}
      {{- end }}
  {{- end }}
{{- end }}
{{- end -}}

{{/* The endpoint a flow entry (kind dataset or site) names in values. */}}
{{- define "medplan.endpoint" -}}
{{- $endpoints := ternary .root.Values.datasets .root.Values.sites (eq .peer.kind "dataset") -}}
{{- $ep := index $endpoints .peer.id -}}
{{- if not $ep -}}
{{- fail (printf "workload %s has a flow with %s %s, which has no entry under %ss in values" .w.workload .peer.kind .peer.id .peer.kind) -}}
{{- end -}}
{{- toJson $ep -}}
{{- end -}}

{{/*
NetworkPolicy rules of one direction ("to" for egress, "from" for ingress).
A rule is written only when its peers are known: a rule without peers would
allow every address, so an endpoint left empty in values allows nothing.
Ingress is limited to the workload's service port when it has one.
*/}}
{{- define "medplan.rules" -}}
{{- $root := .root -}}
{{- $w := .w -}}
{{- $field := .field -}}
{{- $serves := eq $w.controller "Deployment" -}}
{{- $entries := ternary $w.egress $w.ingress (eq $field "to") -}}
{{- range $entries }}
{{- if eq .kind "workload" }}
- {{ $field }}:
    - podSelector:
        matchLabels:
          app.kubernetes.io/instance: {{ $root.Release.Name | toJson }}
          medplan.dev/workload: {{ .id | toJson }}
  {{- if and (eq $field "from") $serves }}
  ports:
    - port: {{ int64 $w.port }}
      protocol: TCP
  {{- end }}
{{- else }}
{{- $ep := include "medplan.endpoint" (dict "root" $root "w" $w "peer" .) | fromJson -}}
{{- $peers := include "medplan.peers" $ep }}
{{- if trim $peers }}
- {{ $field }}:
    {{- $peers | trim | nindent 4 }}
  {{- if eq $field "to" }}
  ports:
    {{- range $ep.ports }}
    - port: {{ int64 .port }}
      protocol: {{ .protocol | toJson }}
    {{- end }}
  {{- else if $serves }}
  ports:
    - port: {{ int64 $w.port }}
      protocol: TCP
  {{- end }}
{{- else if $root.Values.networkPolicy.requireEndpoints }}
{{- fail (printf "networkPolicy.requireEndpoints is true but %ss.%s (a flow of workload %s) has no cidrs or namespace" .kind .id $w.workload) }}
{{- end }}
{{- end }}
{{- end }}
{{- if and (eq $field "from") $serves }}
{{- $clients := include "medplan.peers" $w.clients }}
{{- if trim $clients }}
- from:
    {{- $clients | trim | nindent 4 }}
  ports:
    - port: {{ int64 $w.port }}
      protocol: TCP
{{- end }}
{{- end }}
{{- if gt (int $w.podsPerReplica) 1 }}
- {{ $field }}:
    - podSelector:
        matchLabels:
          {{- include "medplan.selectorLabels" (dict "root" $root "w" $w) | nindent 10 }}
{{- end }}
{{- end -}}
