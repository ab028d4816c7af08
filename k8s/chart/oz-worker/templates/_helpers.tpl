{{/* Names and labels follow the oz-agent-worker chart's rules, so a release
keeps its object names when nameOverride / fullnameOverride say so. */}}

{{- define "oz-worker.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "oz-worker.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "oz-worker.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "oz-worker.selectorLabels" -}}
app.kubernetes.io/name: {{ include "oz-worker.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "oz-worker.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "oz-worker.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "oz-worker.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "oz-worker.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create=false (name the ServiceAccount the worker runs as)" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "oz-worker.apiKeySecretName" -}}
{{- if .Values.warp.apiKeySecret.create -}}
{{- default (printf "%s-api-key" (include "oz-worker.fullname" .)) .Values.warp.apiKeySecret.name -}}
{{- else -}}
{{- required "warp.apiKeySecret.name is required when warp.apiKeySecret.create=false (name the Secret that holds the worker's API key)" .Values.warp.apiKeySecret.name -}}
{{- end -}}
{{- end -}}

{{/* The worker's backend: backend.type, kubernetes unless set. */}}
{{- define "oz-worker.backendType" -}}
{{- $type := default "kubernetes" (dig "type" "" (default (dict) .Values.backend)) | toString -}}
{{- if not (has $type (list "kubernetes" "command")) -}}
{{- fail (printf "backend.type must be \"kubernetes\" or \"command\" (got %q)" $type) -}}
{{- end -}}
{{- $type -}}
{{- end -}}

{{/* The namespace task Jobs run in: kubernetesBackend.namespace, else the release's. */}}
{{- define "oz-worker.taskNamespace" -}}
{{- default .Release.Namespace .Values.kubernetesBackend.namespace -}}
{{- end -}}

{{- define "oz-worker.image" -}}
{{- $repository := .Values.image.repository -}}
{{- if regexMatch "(^|/)oz-agent-worker$" $repository -}}
{{- fail (printf "image.repository is %s, the Go worker's image, which does not run this chart's flags: set image.repository and image.tag to an oz-worker image (build it from the repository's Dockerfile)" $repository) -}}
{{- end -}}
{{- printf "%s:%s" $repository (default .Chart.AppVersion .Values.image.tag | toString) -}}
{{- end -}}

{{- define "oz-worker.prometheus" -}}
{{- if and .Values.metrics.enabled (eq .Values.metrics.exporter "prometheus") -}}true{{- end -}}
{{- end -}}

{{/* Helm reads numbers in values files as floats; int64 keeps 1000000 from rendering as 1e+06. */}}
{{- define "oz-worker.configYaml" -}}
{{- $w := .Values.worker -}}
{{- $backend := include "oz-worker.backendType" . -}}
{{- $section := dict -}}
{{- if eq $backend "command" -}}
{{- $cb := .Values.commandBackend -}}
{{- $_ := set $section "dispatch_command" (required "commandBackend.dispatchCommand is required when backend.type=command" $cb.dispatchCommand) -}}
{{- with $cb.cancelCommand }}{{ $_ := set $section "cancel_command" . }}{{ end -}}
{{- $_ := set $section "dispatch_timeout" (default "60s" $cb.dispatchTimeout) -}}
{{- with $cb.environment }}{{ $_ := set $section "environment" . }}{{ end -}}
{{- else -}}
{{- $kb := .Values.kubernetesBackend -}}
{{- $section = dict "namespace" (include "oz-worker.taskNamespace" .) "image_pull_policy" $kb.imagePullPolicy "use_image_volumes" $kb.useImageVolumes "unschedulable_timeout" $kb.unschedulableTimeout -}}
{{- $k := $section -}}
{{- with $kb.defaultImage }}{{ $_ := set $k "default_image" . }}{{ end -}}
{{- with $kb.preflightImage }}{{ $_ := set $k "preflight_image" . }}{{ end -}}
{{- with $kb.sidecarImage }}{{ $_ := set $k "sidecar_image" . }}{{ end -}}
{{- with $kb.setupCommand }}{{ $_ := set $k "setup_command" . }}{{ end -}}
{{- with $kb.teardownCommand }}{{ $_ := set $k "teardown_command" . }}{{ end -}}
{{- with $kb.extraLabels }}{{ $_ := set $k "extra_labels" . }}{{ end -}}
{{- with $kb.extraAnnotations }}{{ $_ := set $k "extra_annotations" . }}{{ end -}}
{{- /* null or 0: no deadline, which this worker's config says with 0 (its default is 8 h). */ -}}
{{- $_ := set $k "active_deadline_seconds" (int64 (default 0 $kb.activeDeadlineSeconds)) -}}
{{- if and $w.cleanup (not (kindIs "invalid" $kb.ttlSecondsAfterFinished)) -}}
{{- $_ := set $k "ttl_seconds_after_finished" (int64 $kb.ttlSecondsAfterFinished) -}}
{{- end -}}
{{- with $kb.workspaceSizeLimit }}{{ $_ := set $k "workspace_size_limit" . }}{{ end -}}
{{- /* The worker's default is 2m: left out then, so an older worker image takes the default render. */ -}}
{{- if and $kb.volumeMountTimeout (ne (toString $kb.volumeMountTimeout) "2m") }}{{ $_ := set $k "volume_mount_timeout" $kb.volumeMountTimeout }}{{ end -}}
{{- with $kb.preflightTimeout }}{{ $_ := set $k "preflight_timeout" . }}{{ end -}}
{{- with $kb.codingCliSidecars }}{{ $_ := set $k "coding_cli_sidecars" . }}{{ end -}}
{{- with $kb.podTemplate }}{{ $_ := set $k "pod_template" . }}{{ end -}}
{{- with $kb.preflightResources }}{{ $_ := set $k "preflight_resources" . }}{{ end -}}
{{- end -}}
{{- $workerId := required "worker.workerId is required (one release per worker id)" $w.workerId | toString -}}
{{- if hasPrefix "warp" $workerId -}}
{{- fail (printf "worker.workerId %q starts with \"warp\", which is reserved: choose another id" $workerId) -}}
{{- end -}}
{{- /* Top-level keys one by one, in the order of the config file's documentation. */ -}}
{{- toYaml (dict "worker_id" $workerId) }}
{{ toYaml (dict "cleanup" $w.cleanup) }}
{{ toYaml (dict "max_concurrent_tasks" (int64 $w.maxConcurrentTasks)) }}
{{- with $w.idleOnComplete }}
{{ toYaml (dict "idle_on_complete" .) }}
{{- end }}
{{- /* The worker's default is true: written only when turned off (an older worker image takes the default render). */ -}}
{{- if and (hasKey $w "collectTaskLogs") (not (kindIs "invalid" $w.collectTaskLogs)) (not $w.collectTaskLogs) }}
{{ toYaml (dict "collect_task_logs" false) }}
{{- end }}
{{ toYaml (dict "backend" (dict $backend $section)) }}
{{- end -}}
