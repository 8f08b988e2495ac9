CREATE TABLE `task_init_images` (
	`task_id` text PRIMARY KEY NOT NULL,
	`type` text NOT NULL,
	`bytes` blob NOT NULL,
	FOREIGN KEY (`task_id`) REFERENCES `tasks`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE TABLE `tasks` (
	`id` text PRIMARY KEY NOT NULL,
	`owner_key_hash` text NOT NULL,
	`status` text DEFAULT 'pending' NOT NULL,
	`prompt` text NOT NULL,
	`negative_prompt` text,
	`width` integer,
	`height` integer,
	`num_images` integer DEFAULT 1 NOT NULL,
	`num_inference_steps` integer,
	`guidance_scale` real,
	`strength` real,
	`scheduler` text,
	`seed` integer,
	`output_format` text DEFAULT 'png' NOT NULL,
	`callback_url` text,
	`has_init_image` integer DEFAULT false NOT NULL,
	`progress_step` integer,
	`progress_total` integer,
	`queue_position` integer,
	`result_urls` text,
	`error_message` text,
	`attempts` integer DEFAULT 0 NOT NULL,
	`lease_owner` text,
	`lease_until` integer,
	`node` text,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`started_at` integer,
	`finished_at` integer
);
--> statement-breakpoint
CREATE INDEX `tasks_status_created_at_idx` ON `tasks` (`status`,`created_at`);--> statement-breakpoint
CREATE INDEX `tasks_lease_until_idx` ON `tasks` (`lease_until`) WHERE "tasks"."lease_until" IS NOT NULL;--> statement-breakpoint
CREATE INDEX `tasks_owner_created_at_idx` ON `tasks` (`owner_key_hash`,`created_at`);