{{/* Names: <release>-vajracast, or the release name alone when it already says vajracast. */}}
{{- define "vajracast.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "vajracast.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one role; call with (dict "root" $ "component" "web"). */}}
{{- define "vajracast.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "vajracast.componentLabels" -}}
{{ include "vajracast.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "vajracast.secretName" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-env" (include "vajracast.fullname" .)) -}}
{{- end -}}

{{- define "vajracast.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* The workers' image: the gpu target's when hardware encoding is on. */}}
{{- define "vajracast.workerImage" -}}
{{- if .Values.gpu.enabled -}}
{{- $tag := .Values.gpu.image.tag | default (printf "%s-gpu" (.Values.image.tag | default .Chart.AppVersion)) -}}
{{- printf "%s:%s" (.Values.gpu.image.repository | default .Values.image.repository) $tag -}}
{{- else -}}
{{- include "vajracast.image" . -}}
{{- end -}}
{{- end -}}

{{- define "vajracast.workerName" -}}
{{- printf "%s-worker" (include "vajracast.fullname" .) -}}
{{- end -}}

{{- define "vajracast.dataDir" -}}/var/lib/vajracast{{- end -}}

{{/* Worker N's listener ports, as a JSON list: its UDP block, and its RTMP port (or 0). */}}
{{- define "vajracast.workerPorts" -}}
{{- $l := .root.Values.listeners -}}
{{- $first := add $l.firstPort (mul .ordinal $l.portsPerWorker) -}}
{{- $rtmp := 0 -}}
{{- if $l.rtmp.enabled -}}
{{- $rtmp = add $l.rtmp.port (mul .ordinal $l.rtmp.portStep) -}}
{{- end -}}
{{- dict "min" $first "max" (sub (add $first $l.portsPerWorker) 1) "rtmp" $rtmp | toJson -}}
{{- end -}}

{{/* Call with (dict "root" $ "gpu" true) for the workers: they join the GPU device groups. */}}
{{- define "vajracast.podSecurityContext" -}}
{{- $context := deepCopy .root.Values.podSecurityContext -}}
{{- if and .gpu .root.Values.gpu.enabled -}}
{{- $_ := set $context "supplementalGroups" .root.Values.gpu.supplementalGroups -}}
{{- end -}}
{{- toYaml $context -}}
{{- end -}}

{{/* The environment every long-running role shares: the ConfigMap, then the Secret. */}}
{{- define "vajracast.envFrom" -}}
- configMapRef:
    name: {{ include "vajracast.fullname" . }}-config
- secretRef:
    name: {{ include "vajracast.secretName" . }}
{{- end -}}

{{- define "vajracast.dataVolume" -}}
- name: data
{{- if .Values.dataVolume.existingClaim }}
  persistentVolumeClaim:
    claimName: {{ .Values.dataVolume.existingClaim }}
{{- else }}
  emptyDir: {}
{{- end }}
- name: tmp
  emptyDir: {}
{{- end -}}

{{- define "vajracast.dataMounts" -}}
- name: data
  mountPath: {{ include "vajracast.dataDir" . }}
- name: tmp
  mountPath: /tmp
{{- end -}}
