{{/* The chart name. */}}
{{- define "rao.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The full name: the release name, or <release>-<chart> when it does not contain the chart name. */}}
{{- define "rao.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "rao.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "rao.labels" -}}
helm.sh/chart: {{ include "rao.chart" . }}
{{ include "rao.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: remote-assist-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the operator's pods. */}}
{{- define "rao.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rao.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "rao.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "rao.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "rao.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The existing Secret holding the client secret or the certificate. */}}
{{- define "rao.credentialsSecret" -}}
{{- default (printf "%s-credentials" (include "rao.fullname" .)) .Values.credentials.existingSecret }}
{{- end }}

{{/* The key in that Secret, by mode. */}}
{{- define "rao.credentialsKey" -}}
{{- if .Values.credentials.key }}
{{- .Values.credentials.key }}
{{- else if eq .Values.credentials.mode "certificate" }}
{{- "certificate.pem" }}
{{- else }}
{{- "clientSecret" }}
{{- end }}
{{- end }}

{{/* Where the credentials Secret is mounted. */}}
{{- define "rao.credentialsDir" -}}
/var/run/secrets/remoteassist
{{- end }}

{{/* The Secret holding the delegated compliance credential's refresh token. */}}
{{- define "rao.complianceLoginSecret" -}}
{{- default (printf "%s-compliance-login" (include "rao.fullname" .)) .Values.compliance.loginSecret -}}
{{- end -}}
