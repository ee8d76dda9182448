{{/* Named templates shared by the mtls-guard chart: names, labels, image, and the command lines. */}}

{{- define "mtls-guard.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-scoped base name; "mtls-guard" when the release is called mtls-guard. */}}
{{- define "mtls-guard.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* Name of the ValidatingWebhookConfiguration and of its single webhook (a qualified name). */}}
{{- define "mtls-guard.webhookName" -}}
{{- printf "%s.mtls-guard.io" (include "mtls-guard.fullname" .) }}
{{- end }}

{{/* The Secret holding tls.crt, tls.key and ca.crt. */}}
{{- define "mtls-guard.tlsSecretName" -}}
{{- printf "%s-tls" (include "mtls-guard.fullname" .) }}
{{- end }}

{{- define "mtls-guard.certsName" -}}
{{- printf "%s-certs" (include "mtls-guard.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mtls-guard.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "mtls-guard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mtls-guard
{{- end }}

{{- define "mtls-guard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mtls-guard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: webhook
{{- end }}

{{- define "mtls-guard.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* failurePolicy: the value if set, otherwise Fail in enforce mode and Ignore in warn mode. */}}
{{- define "mtls-guard.failurePolicy" -}}
{{- if .Values.failurePolicy }}
{{- .Values.failurePolicy }}
{{- else if eq .Values.mode "warn" }}
{{- "Ignore" }}
{{- else }}
{{- "Fail" }}
{{- end }}
{{- end }}

{{/* Pod-level security context shared by the server and the certificate jobs (uid of distroless "nonroot"). */}}
{{- define "mtls-guard.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "mtls-guard.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end }}

{{/* `mtls-guard certs` arguments (initContainer and CronJob); the same as deploy/overlays/builtin-certs. */}}
{{- define "mtls-guard.certsArgs" -}}
- certs
- --namespace
- {{ .Release.Namespace | quote }}
- --service
- {{ include "mtls-guard.fullname" . | quote }}
- --secret
- {{ include "mtls-guard.tlsSecretName" . | quote }}
- --webhook
- {{ include "mtls-guard.webhookName" . | quote }}
- --validity
- {{ .Values.certificates.validity | quote }}
- --renew-before
- {{ .Values.certificates.renewBefore | quote }}
- --ca-validity
- {{ .Values.certificates.builtin.caValidity | quote }}
- --cluster-domain
- {{ .Values.clusterDomain | quote }}
{{- end }}

{{/* The namespaceSelector of both webhook entries: kube-system, the release namespace, the
excludeNamespaces value, and namespaces labelled `mtls-guard.io/mode: "off"` (the API server does
not call the webhook there) stay out. */}}
{{- define "mtls-guard.namespaceSelector" -}}
matchExpressions:
- key: kubernetes.io/metadata.name
  operator: NotIn
  values:
  - kube-system
  {{- if ne .Release.Namespace "kube-system" }}
  - {{ .Release.Namespace | quote }}
  {{- end }}
  {{- range .Values.excludeNamespaces }}
  {{- if and (ne . "kube-system") (ne . $.Release.Namespace) }}
  - {{ . | quote }}
  {{- end }}
  {{- end }}
- key: mtls-guard.io/mode
  operator: NotIn
  values: ["off"]
{{- end }}
