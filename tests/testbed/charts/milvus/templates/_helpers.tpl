{{/* Copied naming/label rules of charts/milvus 5.0.19 (_helpers.tpl). */}}
{{- define "milvus.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "milvus.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default "milvus" .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "milvus.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "milvus.matchLabels" -}}
app.kubernetes.io/name: {{ include "milvus.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "milvus.labels" -}}
helm.sh/chart: {{ include "milvus.chart" . }}
{{ include "milvus.matchLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/*
One component Deployment. Context: dict with root, component, values, rg (optional).
*/}}
{{- define "testchart.deployment" -}}
{{- $root := .root -}}
{{- $name := printf "%s-%s" (include "milvus.fullname" $root) .component -}}
{{- if .rg }}{{- $name = printf "%s-%s" $name .rg -}}{{- end }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  labels:
{{ include "milvus.labels" $root | indent 4 }}
    component: {{ .component | quote }}
{{- if .rg }}
    milvus.io/resource-group: {{ .rg | quote }}
{{- end }}
{{- with $root.Values.labels }}
{{ toYaml . | indent 4 }}
{{- end }}
spec:
  {{- if ge (int .values.replicas) 0 }}
  replicas: {{ .values.replicas }}
  {{- end }}
  selector:
    matchLabels:
{{ include "milvus.matchLabels" $root | indent 6 }}
      component: {{ .component | quote }}
{{- if .rg }}
      milvus.io/resource-group: {{ .rg | quote }}
{{- end }}
  template:
    metadata:
      labels:
{{ include "milvus.matchLabels" $root | indent 8 }}
        component: {{ .component | quote }}
{{- if .rg }}
        milvus.io/resource-group: {{ .rg | quote }}
{{- end }}
{{- with $root.Values.labels }}
{{ toYaml . | indent 8 }}
{{- end }}
    spec:
      containers:
      - name: {{ .component }}
        image: "{{ $root.Values.image.all.repository }}:{{ $root.Values.image.all.tag }}"
        args: ["milvus", "run", {{ .component | quote }}]
        {{- if .rg }}
        env:
        - name: MILVUS_SERVER_LABEL_RESOURCE_GROUP
          value: {{ .rg | quote }}
        {{- end }}
{{- end -}}

{{/* HPA for a component, autoscaling/v2 when served, else v2beta2. */}}
{{- define "testchart.hpa" -}}
{{- $root := .root -}}
{{- $target := printf "%s-%s" (include "milvus.fullname" $root) .component -}}
{{- if $root.Capabilities.APIVersions.Has "autoscaling/v2" }}
apiVersion: autoscaling/v2
{{- else }}
apiVersion: autoscaling/v2beta2
{{- end }}
kind: HorizontalPodAutoscaler
metadata:
  name: {{ $target }}-hpa
  labels:
    component: {{ .component | quote }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ $target }}
  minReplicas: {{ .values.hpa.minReplicas | default 1 }}
  maxReplicas: {{ .values.hpa.maxReplicas | default 10 }}
  metrics:
  - type: Resource
    resource:
      name: cpu
      target:
        type: Utilization
        averageUtilization: {{ .values.hpa.cpuUtilization | default 40 }}
  {{- if .memory }}
  - type: Resource
    resource:
      name: memory
      target:
        type: Utilization
        averageUtilization: {{ .values.hpa.memoryUtilization | default 40 }}
  {{- end }}
{{- end -}}
