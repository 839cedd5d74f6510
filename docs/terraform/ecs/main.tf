# Vajra Cast on AWS ECS: an example, not a module. docs/deployment.md explains the shape.
#
#   web      Fargate service behind an Application Load Balancer (HTTPS)
#   beat     Fargate service, exactly one task
#   migrate  Fargate task definition, run once before each update (aws ecs run-task)
#   workers  one EC2 instance per worker node, host networking, each owning a block of UDP
#            listener ports and an RTMP port; one Network Load Balancer in front routes each port
#            to the worker that owns it, so every encoder URL names the same host
#
# PostgreSQL (RDS) and Redis (ElastiCache) are expected to exist; their URLs and the Django secret
# key come from Secrets Manager. Networking (VPC, subnets, routing) and TLS certificates too.
#
# Why the workers are not on Fargate: a route's SRT listener is a UDP port bound on one node that
# the encoders' address must reach, and a route stays on that node. Fargate tasks get a new ENI
# and address on every start, cannot use host networking, and an NLB target group in front of
# them would spread UDP over every task of the service. EC2 instances keep their node name
# (VAJRACAST_NODE_NAME), their port block and their place behind the NLB across restarts.

terraform {
  required_version = ">= 1.6"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }
  }
}

provider "aws" {
  region = var.region
}

variable "region" {
  type    = string
  default = "eu-west-1"
}

variable "name" {
  type    = string
  default = "vajracast"
}

variable "image" {
  description = "The gateway image, pinned: repository:x.y.z (the gpu target's tag for GPU workers)."
  type        = string
}

variable "vpc_id" {
  type = string
}

variable "public_subnet_ids" {
  description = "Subnets of the load balancers."
  type        = list(string)
}

variable "private_subnet_ids" {
  description = "Subnets of the web and beat tasks."
  type        = list(string)
}

variable "worker_subnet_id" {
  description = "Subnet of the worker instances (the NLB reaches them there)."
  type        = string
}

variable "certificate_arn" {
  description = "ACM certificate for the web host name."
  type        = string
}

variable "web_host" {
  description = "The host name operators open, e.g. gw.example.net."
  type        = string
}

variable "public_host" {
  description = "The host name encoders send to: a DNS name for the NLB (VAJRACAST_PUBLIC_HOST)."
  type        = string
}

variable "secrets_arn" {
  description = "Secrets Manager secret, JSON with DATABASE_URL, CELERY_BROKER_URL, REDIS_URL, SECRET_KEY."
  type        = string
}

variable "workers" {
  description = "Worker nodes by name, each with its own block of UDP listener ports and RTMP port."
  type = map(object({
    port_min  = number
    port_max  = number
    rtmp_port = number
  }))
  default = {
    "worker-0" = { port_min = 9000, port_max = 9009, rtmp_port = 1935 }
    "worker-1" = { port_min = 9010, port_max = 9019, rtmp_port = 1936 }
  }
}

variable "worker_instance_type" {
  type    = string
  default = "c7i.xlarge"
}

variable "encoder_cidrs" {
  description = "Where encoders send from."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

locals {
  secret_names = ["DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL", "SECRET_KEY"]
  secrets = [for key in local.secret_names : {
    name      = key
    valueFrom = "${var.secrets_arn}:${key}::"
  }]
  environment = [
    { name = "VAJRACAST_PUBLIC_HOST", value = var.public_host },
    # Health checks of the ALB send the task's IP as Host; the ALB's listener rule below only
    # forwards requests for web_host, so no other name reaches Django.
    { name = "ALLOWED_HOSTS", value = "*" },
    { name = "CSRF_TRUSTED_ORIGINS", value = "https://${var.web_host}" },
  ]
  # One NLB listener per worker port: each forwards to the one instance owning that port.
  worker_ports = merge([
    for worker, spec in var.workers : merge(
      { for port in range(spec.port_min, spec.port_max + 1) : "${worker}-udp-${port}" => {
        worker   = worker
        port     = port
        protocol = "UDP"
      } },
      { "${worker}-rtmp" = { worker = worker, port = spec.rtmp_port, protocol = "TCP" } },
    )
  ]...)
}

resource "aws_ecs_cluster" "this" {
  name = var.name
}

resource "aws_cloudwatch_log_group" "this" {
  name              = "/ecs/${var.name}"
  retention_in_days = 30
}

data "aws_iam_policy_document" "ecs_tasks" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "execution" {
  name               = "${var.name}-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks.json
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

resource "aws_iam_role_policy" "read_secrets" {
  name = "read-secrets"
  role = aws_iam_role.execution.id
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Action = ["secretsmanager:GetSecretValue"], Resource = [var.secrets_arn] }]
  })
}

# --- web, beat and migrate on Fargate ---------------------------------------------------------

resource "aws_security_group" "alb" {
  name   = "${var.name}-alb"
  vpc_id = var.vpc_id
  ingress {
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }
  egress {
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "aws_security_group" "tasks" {
  name   = "${var.name}-tasks"
  vpc_id = var.vpc_id
  ingress {
    from_port       = 8080
    to_port         = 8080
    protocol        = "tcp"
    security_groups = [aws_security_group.alb.id]
  }
  egress {
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "aws_lb" "web" {
  name               = "${var.name}-web"
  load_balancer_type = "application"
  subnets            = var.public_subnet_ids
  security_groups    = [aws_security_group.alb.id]
}

resource "aws_lb_target_group" "web" {
  name        = "${var.name}-web"
  port        = 8080
  protocol    = "HTTP"
  target_type = "ip"
  vpc_id      = var.vpc_id
  health_check {
    # Liveness, not /api/ready: a route waiting for a worker must not take the UI away.
    path    = "/api/health"
    matcher = "200"
  }
}

resource "aws_lb_listener" "web" {
  load_balancer_arn = aws_lb.web.arn
  port              = 443
  protocol          = "HTTPS"
  certificate_arn   = var.certificate_arn
  default_action {
    type = "fixed-response"
    fixed_response {
      content_type = "text/plain"
      status_code  = "404"
    }
  }
}

resource "aws_lb_listener_rule" "web" {
  listener_arn = aws_lb_listener.web.arn
  action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.web.arn
  }
  condition {
    host_header {
      values = [var.web_host]
    }
  }
}

resource "aws_ecs_task_definition" "web" {
  family                   = "${var.name}-web"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = 1024
  memory                   = 2048
  execution_role_arn       = aws_iam_role.execution.arn
  container_definitions = jsonencode([{
    name         = "web"
    image        = var.image
    command      = ["web"]
    essential    = true
    portMappings = [{ containerPort = 8080, protocol = "tcp" }]
    # The migrate task has run before this revision was deployed.
    environment = concat(local.environment, [{ name = "VAJRACAST_MIGRATE", value = "false" }])
    secrets     = local.secrets
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.this.name
        awslogs-region        = var.region
        awslogs-stream-prefix = "web"
      }
    }
  }])
}

resource "aws_ecs_service" "web" {
  name            = "web"
  cluster         = aws_ecs_cluster.this.id
  task_definition = aws_ecs_task_definition.web.arn
  desired_count   = 2
  launch_type     = "FARGATE"
  network_configuration {
    subnets         = var.private_subnet_ids
    security_groups = [aws_security_group.tasks.id]
  }
  load_balancer {
    target_group_arn = aws_lb_target_group.web.arn
    container_name   = "web"
    container_port   = 8080
  }
  depends_on = [aws_lb_listener.web]
}

resource "aws_ecs_task_definition" "beat" {
  family                   = "${var.name}-beat"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = 256
  memory                   = 512
  execution_role_arn       = aws_iam_role.execution.arn
  container_definitions = jsonencode([{
    name        = "beat"
    image       = var.image
    command     = ["beat"]
    essential   = true
    environment = local.environment
    secrets     = local.secrets
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.this.name
        awslogs-region        = var.region
        awslogs-stream-prefix = "beat"
      }
    }
  }])
}

resource "aws_ecs_service" "beat" {
  name            = "beat"
  cluster         = aws_ecs_cluster.this.id
  task_definition = aws_ecs_task_definition.beat.arn
  desired_count   = 1
  launch_type     = "FARGATE"
  # Exactly one scheduler, also during a deployment: the old task stops before the new one starts.
  deployment_minimum_healthy_percent = 0
  deployment_maximum_percent         = 100
  network_configuration {
    subnets         = var.private_subnet_ids
    security_groups = [aws_security_group.tasks.id]
  }
}

# Run before updating the services to a new image:
#   aws ecs run-task --cluster vajracast --launch-type FARGATE --task-definition vajracast-migrate \
#     --network-configuration 'awsvpcConfiguration={subnets=[...],securityGroups=[...]}'
resource "aws_ecs_task_definition" "migrate" {
  family                   = "${var.name}-migrate"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = 512
  memory                   = 1024
  execution_role_arn       = aws_iam_role.execution.arn
  container_definitions = jsonencode([{
    name      = "migrate"
    image     = var.image
    command   = ["migrate"]
    essential = true
    secrets   = [for secret in local.secrets : secret if secret.name == "DATABASE_URL"]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.this.name
        awslogs-region        = var.region
        awslogs-stream-prefix = "migrate"
      }
    }
  }])
}

# --- workers on EC2 with host networking ---------------------------------------------------------

data "aws_ssm_parameter" "ecs_ami" {
  name = "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id"
}

data "aws_iam_policy_document" "ec2" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "worker_instance" {
  name               = "${var.name}-worker-instance"
  assume_role_policy = data.aws_iam_policy_document.ec2.json
}

resource "aws_iam_role_policy_attachment" "worker_instance" {
  role       = aws_iam_role.worker_instance.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role"
}

resource "aws_iam_instance_profile" "worker" {
  name = "${var.name}-worker"
  role = aws_iam_role.worker_instance.name
}

resource "aws_security_group" "workers" {
  name   = "${var.name}-workers"
  vpc_id = var.vpc_id
  dynamic "ingress" {
    for_each = var.workers
    content {
      from_port   = ingress.value.port_min
      to_port     = ingress.value.port_max
      protocol    = "udp"
      cidr_blocks = var.encoder_cidrs
    }
  }
  dynamic "ingress" {
    for_each = var.workers
    content {
      from_port   = ingress.value.rtmp_port
      to_port     = ingress.value.rtmp_port
      protocol    = "tcp"
      cidr_blocks = var.encoder_cidrs
    }
  }
  egress {
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

# One instance per worker node: the node's name is an ECS instance attribute, so its task lands
# there and nowhere else.
resource "aws_instance" "worker" {
  for_each               = var.workers
  ami                    = data.aws_ssm_parameter.ecs_ami.value
  instance_type          = var.worker_instance_type
  subnet_id              = var.worker_subnet_id
  vpc_security_group_ids = [aws_security_group.workers.id]
  iam_instance_profile   = aws_iam_instance_profile.worker.name
  user_data              = <<-EOT
    #!/bin/bash
    echo 'ECS_CLUSTER=${aws_ecs_cluster.this.name}' >> /etc/ecs/ecs.config
    echo 'ECS_INSTANCE_ATTRIBUTES={"vajracast-node":"${each.key}"}' >> /etc/ecs/ecs.config
  EOT
  tags = {
    Name = "${var.name}-${each.key}"
  }
}

resource "aws_ecs_task_definition" "worker" {
  for_each                 = var.workers
  family                   = "${var.name}-${each.key}"
  requires_compatibilities = ["EC2"]
  network_mode             = "host"
  execution_role_arn       = aws_iam_role.execution.arn
  container_definitions = jsonencode([{
    name              = "worker"
    image             = var.image
    command           = ["worker"]
    essential         = true
    memoryReservation = 1024
    # Room for a draining worker to stop its pipelines and release their leases.
    stopTimeout = 30
    environment = concat(local.environment, [
      { name = "VAJRACAST_NODE_NAME", value = each.key },
      { name = "VAJRACAST_PORT_MIN", value = tostring(each.value.port_min) },
      { name = "VAJRACAST_PORT_MAX", value = tostring(each.value.port_max) },
    ])
    secrets = local.secrets
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.this.name
        awslogs-region        = var.region
        awslogs-stream-prefix = each.key
      }
    }
  }])
}

resource "aws_ecs_service" "worker" {
  for_each        = var.workers
  name            = each.key
  cluster         = aws_ecs_cluster.this.id
  task_definition = aws_ecs_task_definition.worker[each.key].arn
  desired_count   = 1
  launch_type     = "EC2"
  # The ports are the host's: the old task must be gone before the new one can bind them.
  deployment_minimum_healthy_percent = 0
  deployment_maximum_percent         = 100
  placement_constraints {
    type       = "memberOf"
    expression = "attribute:vajracast-node == ${each.key}"
  }
}

resource "aws_lb" "listeners" {
  name               = "${var.name}-listeners"
  load_balancer_type = "network"
  subnets            = var.public_subnet_ids
}

resource "aws_lb_target_group" "worker_port" {
  for_each    = local.worker_ports
  name        = substr(replace("${var.name}-${each.key}", "_", "-"), 0, 32)
  port        = each.value.port
  protocol    = each.value.protocol
  target_type = "instance"
  vpc_id      = var.vpc_id
  # UDP cannot be checked and a worker has no health endpoint; this probes its RTMP port. With a
  # single target the check does not gate anything (an NLB whose targets are all unhealthy
  # forwards anyway): a worker's health is its node heartbeat (nodes API, alert rules).
  health_check {
    protocol = "TCP"
    port     = tostring(var.workers[each.value.worker].rtmp_port)
  }
}

resource "aws_lb_target_group_attachment" "worker_port" {
  for_each         = local.worker_ports
  target_group_arn = aws_lb_target_group.worker_port[each.key].arn
  target_id        = aws_instance.worker[each.value.worker].id
  port             = each.value.port
}

resource "aws_lb_listener" "worker_port" {
  for_each          = local.worker_ports
  load_balancer_arn = aws_lb.listeners.arn
  port              = each.value.port
  protocol          = each.value.protocol
  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.worker_port[each.key].arn
  }
}

output "web_url" {
  value = "https://${var.web_host}/ (point ${var.web_host} at ${aws_lb.web.dns_name})"
}

output "encoder_host" {
  value = "point ${var.public_host} at ${aws_lb.listeners.dns_name}"
}
